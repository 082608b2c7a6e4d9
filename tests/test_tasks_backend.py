"""Django's Tasks framework on kinetik: ``@task`` functions enqueued through KinetikTaskBackend.

Runs on Django 6.x (``django.tasks``) and on 5.2 (the ``django-tasks`` backport);
``framework`` is whichever of the two this Django has. The behaviour pinned here
is what the framework's own database backend tests expect of a backend
(statuses, errors, worker ids, context, signals, get_result), plus what kinetik
adds: retries, timeouts, cancellation and leases for these jobs too.
"""

from datetime import timedelta

import django
import pytest
from asgiref.sync import async_to_sync
from django.db import transaction
from django.utils import timezone

import django_kinetik as kinetik
from django_kinetik.exceptions import JobCancelled, JobLost, JobTimeout
from django_kinetik.fastpath.connection import queue_key
from django_kinetik.models import Job, JobRun, Outcome, Status, Worker
from django_kinetik.registry import registry
from django_kinetik.tasks_backend import KinetikTaskBackend, framework
from django_kinetik.tasks_backend import results as task_results
from django_kinetik.worker import Worker as KinetikWorker
from tests.testapp import django_tasks as functions

pytestmark = pytest.mark.django_db(transaction=True)
READY, RUNNING = framework.TaskResultStatus.READY, framework.TaskResultStatus.RUNNING
SUCCESSFUL, FAILED = framework.TaskResultStatus.SUCCESSFUL, framework.TaskResultStatus.FAILED


@pytest.fixture(autouse=True)
def _clear_calls():
    functions.calls.clear()


@pytest.fixture
def task_signals():
    """Django's task signals (of this Django's framework) as (name, sender, status, result)."""
    log = []
    connected = []
    for name in ("task_enqueued", "task_started", "task_finished"):
        signal = getattr(framework, name)

        def receiver(sender, task_result, _name=name, **kwargs):
            log.append((_name, sender, task_result.status, task_result))

        signal.connect(receiver, weak=False)
        connected.append((signal, receiver))
    yield log
    for signal, receiver in connected:
        signal.disconnect(receiver)


def test_the_framework_is_the_one_of_this_django_and_never_a_mix():
    if django.VERSION >= (6, 0):
        from django import tasks as django_tasks_module

        assert framework.NAME == "django.tasks"
        assert framework.TaskResult is django_tasks_module.TaskResult
        assert framework.task_finished is django_tasks_module.signals.task_finished
        assert isinstance(functions.add, django_tasks_module.Task)
    else:
        import django_tasks

        assert framework.NAME == "django_tasks"
        assert framework.TaskResult is django_tasks.TaskResult
        assert isinstance(functions.add, framework.Task)
    assert isinstance(functions.add.get_backend(), KinetikTaskBackend)


def test_the_backend_claims_every_feature_it_has():
    backend = functions.add.get_backend()
    assert (backend.supports_defer, backend.supports_priority) == (True, True)
    assert (backend.supports_get_result, backend.supports_async_task) == (True, True)


def test_enqueue_creates_a_job_and_returns_a_ready_result():
    result = functions.send_mail.enqueue("ada@example.com", subject="Hi")
    job = Job.objects.get()
    assert (job.task, job.tag, job.priority, job.status) == (
        "tests.testapp.django_tasks.send_mail",
        "mail",
        10,
        Status.QUEUED,
    )
    assert job.data == {"args": ["ada@example.com"], "kwargs": {"subject": "Hi"}}
    assert job.task_backend == "default"
    assert result.id == str(job.pk)
    assert (result.status, result.is_finished, result.attempts) == (READY, False, 0)
    assert (result.args, result.kwargs, result.backend) == (["ada@example.com"], {"subject": "Hi"}, "default")
    assert result.enqueued_at == job.created_at
    assert (result.started_at, result.last_attempted_at, result.finished_at) == (None, None, None)
    assert result.task == functions.send_mail
    with pytest.raises(ValueError, match="not finished"):
        _ = result.return_value


def test_priority_queue_and_run_after_become_the_jobs():
    later = timezone.now() + timedelta(hours=1)
    result = functions.add.using(priority=-20, queue_name="mail", run_after=later).enqueue(1, 2)
    job = Job.objects.get(pk=result.id)
    assert (job.priority, job.tag, job.status, job.run_at) == (-20, "mail", Status.DELAYED, later)
    assert result.status == READY
    assert functions.add.get_result(result.id).task.run_after == later


def test_what_the_backend_refuses_is_refused_before_anything_is_written():
    with pytest.raises(framework.InvalidTask, match="Queue 'nowhere' is not valid"):
        functions.add.using(queue_name="nowhere").enqueue(1, 2)
    with pytest.raises(framework.InvalidTask, match="priority"):
        functions.add.using(priority=101).enqueue(1, 2)
    with pytest.raises(TypeError):
        functions.add.enqueue(object(), 2)
    assert not Job.objects.exists()


def test_bad_options_say_what_to_fix():
    # The backend still loads (so manage.py check can report it); see test_tasks_checks.py.
    (message,) = KinetikTaskBackend("x", {"OPTIONS": {"retries": "three"}}).check()
    assert "TASKS['x']['OPTIONS']" in message.msg and "retries must be an integer" in message.msg
    (message,) = KinetikTaskBackend("x", {"OPTIONS": {"tag": "mail"}}).check()
    assert "cannot set tag" in message.msg


def test_an_enqueue_rolled_back_with_its_transaction_leaves_nothing(task_signals):
    with pytest.raises(RuntimeError), transaction.atomic():
        functions.add.enqueue(1, 2)
        raise RuntimeError("roll back")
    assert not Job.objects.exists()
    assert task_signals == []


def test_task_enqueued_is_sent_once_the_job_is_committed(task_signals):
    with transaction.atomic():
        result = functions.add.enqueue(1, 2)
        assert task_signals == []
    assert [(name, sender, status) for name, sender, status, _ in task_signals] == [
        ("task_enqueued", KinetikTaskBackend, READY)
    ]
    assert task_signals[0][3] is result


def test_a_worker_runs_it_and_the_result_says_so(run_worker, task_signals, received):
    result = functions.add.enqueue(2, 3)
    run_worker()
    worker = Worker.objects.get()
    assert functions.calls == [("add", (2, 3))]
    result.refresh()
    assert (result.status, result.return_value, result.is_finished) == (SUCCESSFUL, 5, True)
    assert (result.worker_ids, result.attempts, result.errors) == ([worker.name], 1, [])
    assert result.enqueued_at <= result.started_at <= result.finished_at
    assert result.last_attempted_at == result.started_at
    assert functions.add.get_result(result.id).return_value == 5
    # Django's signals, then kinetik's own.
    assert [(name, status) for name, _, status, _ in task_signals] == [
        ("task_enqueued", READY),
        ("task_started", RUNNING),
        ("task_finished", SUCCESSFUL),
    ]
    assert task_signals[1][3].worker_ids == [worker.name]
    assert [name for name, _ in received] == ["job_created", "job_started", "job_completed", "queue_empty"]


def test_a_worker_with_no_tags_serves_the_backends_queues():
    assert {"default", "mail"} <= set(KinetikWorker().tags)


def test_a_worker_imports_a_function_it_has_never_seen(run_worker):
    result = functions.send_mail.enqueue("grace@example.com")
    # As in a fresh worker process: nothing registered the function there.
    registry.unregister("tests.testapp.django_tasks.send_mail")
    run_worker()
    result.refresh()
    assert (result.status, result.return_value) == (SUCCESSFUL, {"to": "grace@example.com", "subject": ""})


def test_an_exception_fails_it_with_an_importable_class_and_the_traceback(run_worker, task_signals):
    result = functions.fail.enqueue("card declined")
    run_worker()
    result.refresh()
    assert result.status == FAILED
    (error,) = result.errors
    assert error.exception_class is ValueError
    assert error.traceback.endswith("ValueError: card declined\n")
    with pytest.raises(ValueError, match="Task failed"):
        _ = result.return_value
    assert [(name, status) for name, _, status, _ in task_signals][-1] == ("task_finished", FAILED)


def test_system_exit_in_a_task_fails_it_and_the_worker_carries_on(run_worker):
    exits = functions.exit_now.enqueue()
    after = functions.add.enqueue(1, 1)
    run_worker()
    exits.refresh()
    assert exits.status == FAILED
    assert exits.errors[0].exception_class is SystemExit
    assert functions.add.get_result(after.id).status == SUCCESSFUL


def test_a_return_value_that_is_not_json_fails_it(run_worker):
    result = functions.not_json.enqueue()
    run_worker()
    result.refresh()
    assert result.status == FAILED
    assert result.errors[0].exception_class is TypeError


def test_retries_from_kinetik_settings_apply_and_every_attempts_error_is_kept(run_worker, settings):
    flaky = {"retries": 2, "retry_delay": 0}
    settings.KINETIK = {**settings.KINETIK, "TASKS": {"tests.testapp.django_tasks.flaky": flaky}}
    result = functions.flaky.enqueue(2)
    run_worker()
    result.refresh()
    assert (result.status, result.return_value, result.attempts) == (SUCCESSFUL, 3, 3)
    assert [error.exception_class for error in result.errors] == [ConnectionError, ConnectionError]
    assert "attempt 1 failed" in result.errors[0].traceback
    assert functions.calls == [("flaky", 1), ("flaky", 2), ("flaky", 3)]


def test_a_timeout_fails_it_with_job_timeout(run_worker, settings):
    settings.KINETIK = {**settings.KINETIK, "TASKS": {"tests.testapp.django_tasks.sleep": {"timeout": "200ms"}}}
    result = functions.sleep.enqueue(1.5)
    run_worker()
    result.refresh()
    assert result.status == FAILED
    assert result.errors[-1].exception_class is JobTimeout
    assert "timed out after" in result.errors[-1].traceback


def test_a_cancelled_job_is_failed_with_job_cancelled(task_signals):
    result = functions.add.enqueue(1, 2)
    kinetik.cancel(int(result.id))
    result.refresh()
    assert result.status == FAILED
    assert [error.exception_class for error in result.errors] == [JobCancelled]
    assert [(name, status) for name, _, status, _ in task_signals] == [
        ("task_enqueued", READY),
        ("task_finished", FAILED),
    ]


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (Status.QUEUED, READY),
        (Status.DELAYED, READY),
        (Status.ACTIVE, RUNNING),
        (Status.COMPLETED, SUCCESSFUL),
        (Status.FAILED, FAILED),
        (Status.TIMEOUT, FAILED),
        (Status.CANCELLED, FAILED),
    ],
)
def test_every_job_status_maps_to_a_task_status(status, expected):
    result = functions.add.enqueue(1, 2)
    Job.objects.filter(pk=result.id).update(status=status)
    assert functions.add.get_result(result.id).status == expected


def test_a_job_lost_with_its_worker_is_failed_with_job_lost():
    result = functions.add.enqueue(1, 2)
    worker = Worker.objects.create(name="gone:1:abc", host="gone", pid=1)
    now = timezone.now()
    Job.objects.filter(pk=result.id).update(
        status=Status.FAILED, error_code="lost", error="lost", attempts=0, ghosts=1, finished_at=now
    )
    JobRun.objects.create(
        job_id=result.id,
        attempt=1,
        worker=worker,
        outcome=Outcome.LOST,
        started_at=now,
        finished_at=now,
        error="lost: worker gone:1:abc stopped renewing its lease",
        error_code="lost",
        exception="django_kinetik.exceptions.JobLost",
    )
    result.refresh()
    assert (result.status, result.worker_ids) == (FAILED, ["gone:1:abc"])
    assert result.errors[0].exception_class is JobLost
    assert "stopped renewing its lease" in result.errors[0].traceback


def test_a_task_that_takes_context_gets_its_result_and_attempt(run_worker):
    result = functions.describe.enqueue()
    run_worker()
    result.refresh()
    worker = Worker.objects.get()
    assert result.return_value == {
        "id": result.id,
        "attempt": 1,
        "status": "RUNNING",
        "worker_ids": [worker.name],
        "args": [],
    }


def test_a_coroutine_task_runs(run_worker):
    result = functions.multiply.enqueue(6, 7)
    run_worker()
    result.refresh()
    assert (result.status, result.return_value) == (SUCCESSFUL, 42)


def test_higher_priority_runs_first(run_worker):
    for priority, address in [(-5, "low"), (50, "urgent"), (0, "normal")]:
        functions.send_mail.using(priority=priority).enqueue(address)
    run_worker("mail", concurrency=1)
    assert [args for name, args in functions.calls] == ["urgent", "normal", "low"]


def test_get_result_of_an_unknown_or_malformed_id_raises():
    backend = functions.add.get_backend()
    for result_id in ("123456", "not-a-number", ""):
        with pytest.raises(framework.TaskResultDoesNotExist):
            backend.get_result(result_id)
    # A kinetik job that is not a django.tasks job is not a task result either.
    job = kinetik.create("test.echo")
    with pytest.raises(framework.TaskResultDoesNotExist):
        backend.get_result(str(job.pk))


def test_get_result_of_another_function_raises_mismatch():
    result = functions.add.enqueue(1, 2)
    mismatch = (
        __import__("django.tasks.exceptions", fromlist=["x"]).TaskResultMismatch
        if django.VERSION >= (6, 0)
        else __import__("django_tasks.exceptions", fromlist=["x"]).TaskResultMismatch
    )
    with pytest.raises(mismatch):
        functions.fail.get_result(result.id)


def test_the_async_api_works_too(run_worker):
    async def enqueue():
        return await functions.multiply.aenqueue(3, 4)

    # async_to_sync, as Django runs async code: the ORM calls stay on this thread.
    result = async_to_sync(enqueue)()
    run_worker()

    async def read():
        fetched = await functions.multiply.aget_result(result.id)
        await result.arefresh()
        return fetched

    fetched = async_to_sync(read)()
    assert (fetched.status, fetched.return_value, result.return_value) == (SUCCESSFUL, 12, 12)


def test_eager_mode_runs_it_inside_enqueue_with_signals_in_order(settings, task_signals):
    settings.KINETIK = {**settings.KINETIK, "EAGER": True}
    result = functions.add.enqueue(20, 22)
    assert (result.status, result.return_value, result.worker_ids) == (SUCCESSFUL, 42, ["eager"])
    assert [(name, status) for name, _, status, _ in task_signals] == [
        ("task_enqueued", READY),
        ("task_started", RUNNING),
        ("task_finished", SUCCESSFUL),
    ]
    assert Job.objects.get().status == Status.COMPLETED


def test_the_result_is_built_from_the_job_and_its_runs_only():
    result = functions.add.enqueue(1, 2)
    job = Job.objects.get(pk=result.id)
    built = task_results.task_result(job, [])
    assert (built.id, built.status, built.args, built.backend) == (result.id, READY, [1, 2], "default")


@pytest.mark.slow
def test_manage_py_kinetik_worker_runs_them_in_a_fresh_process(start_worker):
    # That process has never imported tests/testapp/django_tasks.py: it must.
    results = [functions.add.enqueue(n, n) for n in range(20)] + [functions.send_mail.enqueue("ada@example.com")]
    process = start_worker("--burst", "--concurrency", "4")
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    for result in results:
        result.refresh()
    assert [result.status for result in results] == [SUCCESSFUL] * 21
    assert [result.return_value for result in results[:3]] == [0, 2, 4]
    assert {tuple(result.worker_ids) for result in results} == {(Worker.objects.get().name,)}


def test_the_redis_fast_path_carries_them_too(redis_fastpath, run_worker):
    result = functions.send_mail.enqueue("ada@example.com")
    assert redis_fastpath.zcard(queue_key("mail")) == 1
    run_worker()
    result.refresh()
    assert result.status == SUCCESSFUL
