"""The worker as a user sees it: what runs, in which order, and what is recorded."""

import threading
import time

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.utils import timezone

import django_kinetik as kinetik
from django_kinetik import signals
from django_kinetik.models import Job, JobLog, JobRun, Status, Worker
from django_kinetik.worker import Worker as KinetikWorker
from tests.conftest import wait_for
from tests.testapp import tasks as test_tasks

# Each test runs with both claim paths: from the database, and through the Redis fast path.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("claim_path")]


def test_a_job_runs_and_its_return_value_is_the_result(run_worker):
    job = kinetik.create("test.echo", {"to": "a@example.com"})
    run_worker()
    job.refresh_from_db()
    assert job.status == Status.COMPLETED
    assert job.result == {"echo": {"to": "a@example.com"}, "attempt": 1}
    assert job.attempts == 1
    assert job.started_at <= job.finished_at
    run = job.runs.get()
    assert (run.attempt, run.outcome, run.error) == (1, "completed", "")


def test_an_exception_fails_the_job_with_message_code_and_traceback(run_worker):
    job = kinetik.create("test.fail", {"message": "card declined"})
    run_worker()
    job.refresh_from_db()
    assert job.status == Status.FAILED
    assert (job.error, job.error_code) == ("card declined", "E_CARD")
    run = job.runs.get()
    assert run.outcome == "failed"
    assert "PaymentError: card declined" in run.traceback
    assert "tests/testapp/tasks.py" in run.traceback
    with pytest.raises(kinetik.JobFailed, match=r"\[E_CARD\]: card declined"):
        job.wait(timeout="1s")


def test_a_retry_signal_is_over_before_the_next_attempt_starts(run_worker):
    # A job retried at once is claimable as soon as its end commits: a slow
    # receiver of job_retrying must still finish before the next job_started.
    order = []

    def slow_retrying(sender, job, **kwargs):
        time.sleep(0.3)
        order.append(("retrying done", job.attempts))

    def started(sender, job, **kwargs):
        order.append(("started", job.attempts))

    signals.job_retrying.connect(slow_retrying, weak=False)
    signals.job_started.connect(started, weak=False)
    try:
        job = kinetik.create("test.flaky", {"succeed_on": 2})
        run_worker()
    finally:
        signals.job_retrying.disconnect(slow_retrying)
        signals.job_started.disconnect(started)
    job.refresh_from_db()
    assert job.status == Status.COMPLETED
    assert order == [("started", 1), ("retrying done", 1), ("started", 2)]


def test_a_result_that_is_not_json_fails_the_job_clearly(run_worker):
    job = kinetik.create("test.bad_result")
    run_worker()
    job.refresh_from_db()
    assert job.status == Status.FAILED
    assert "return value['when'] is a object" in job.error


def test_retries_give_each_attempt_its_own_history(run_worker, received):
    job = kinetik.create("test.flaky", {"succeed_on": 3})
    run_worker()
    job.refresh_from_db()
    assert job.status == Status.COMPLETED
    assert job.result == {"attempt": 3}
    assert list(job.runs.values_list("attempt", "outcome", "error")) == [
        (1, "failed", "attempt 1 failed"),
        (2, "failed", "attempt 2 failed"),
        (3, "completed", ""),
    ]
    events = [name for name, _ in received if name != "queue_empty"]
    assert events == [
        "job_created",
        "job_started",
        "job_retrying",
        "job_started",
        "job_retrying",
        "job_started",
        "job_completed",
    ]


def test_retries_stop_after_retries_plus_one_attempts(run_worker):
    job = kinetik.create("test.flaky", {"succeed_on": 99})
    run_worker()
    job.refresh_from_db()
    assert (job.status, job.attempts, job.runs.count()) == (Status.FAILED, 4, 4)
    assert job.error == "attempt 4 failed"


def test_retry_delay_and_backoff_decide_when_the_next_attempt_runs(run_worker, temp_task):
    def always_fails(job):
        raise RuntimeError("nope")

    temp_task("backoff.task", always_fails, tag="alpha", retries=5, retry_delay="10m", backoff="exponential")
    job = kinetik.create("backoff.task")
    run_worker()
    job.refresh_from_db()
    assert job.status == Status.DELAYED  # waiting to retry
    first_wait = job.run_at - job.runs.get().finished_at
    assert abs(first_wait.total_seconds() - 600) < 1
    # Pretend the time passed; the second retry waits twice as long.
    Job.objects.filter(pk=job.pk).update(run_at=timezone.now())
    run_worker()
    job.refresh_from_db()
    second_wait = job.run_at - job.runs.last().finished_at
    assert abs(second_wait.total_seconds() - 1200) < 1


def test_create_options_override_retries(run_worker):
    job = kinetik.create("test.flaky", {"succeed_on": 99}, retries=1)
    run_worker()
    job.refresh_from_db()
    assert (job.status, job.attempts) == (Status.FAILED, 2)


def test_tags_are_served_in_priority_order_going_back_to_the_first_tag(run_worker, temp_task):
    # Each beta job creates an alpha job: the worker must run that alpha job
    # before the next beta job, because alpha comes first.
    def spawn(job):
        test_tasks._record(job)
        kinetik.create("test.echo", {"from": job.id})

    temp_task("spawn.beta", spawn, tag="beta")
    betas = [kinetik.create("spawn.beta").pk for _ in range(3)]
    gammas = [kinetik.create("test.gamma").pk for _ in range(2)]
    run_worker("alpha", "beta", "gamma", concurrency=1)
    alphas = list(Job.objects.filter(task="test.echo").order_by("pk").values_list("pk", flat=True))
    assert test_tasks.ran == [betas[0], alphas[0], betas[1], alphas[1], betas[2], alphas[2], *gammas]


def test_a_job_of_an_earlier_tag_created_while_later_ones_run_is_the_next_to_start(temp_task):
    """Kinetik's tag order at any concurrency: no claimed-ahead batch of the later tag runs first."""
    starts = []
    release = threading.Event()

    def record(job):
        starts.append((job.tag, job.id))
        if job.tag == "later":
            release.wait(10)

    temp_task("order.later", record, tag="later")
    temp_task("order.first", record, tag="first")
    later = [kinetik.create("order.later").pk for _ in range(6)]
    worker = KinetikWorker(["first", "later"], concurrency=2, interval=0.05)
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        assert wait_for(lambda: len(starts) == 2, 10)  # both slots busy with later jobs
        first = kinetik.create("order.first").pk
        release.set()
        assert wait_for(lambda: len(starts) == 7, 10)
    finally:
        release.set()
        worker.stop()
        thread.join(timeout=10)
    # Two threads start the jobs of one claim in either order: compare claims (started_at is
    # stamped by the claim), not which thread ran first.
    assert {job_id for _, job_id in starts[:2]} == set(later[:2])
    claimed_at = dict(Job.objects.values_list("pk", "started_at"))
    assert all(claimed_at[first] <= claimed_at[job_id] for job_id in later[2:])
    # The rest of the later tag then runs in its own order, two at a time.
    assert sorted(later[2:], key=lambda job_id: (claimed_at[job_id], job_id)) == later[2:]


def test_priority_orders_jobs_within_a_tag_then_first_in_first_out(run_worker):
    # Named levels and integers share one scale: "medium" is 5, "high" is 10.
    low = kinetik.create("test.echo", priority="low").pk
    normal_1 = kinetik.create("test.echo").pk
    medium_int = kinetik.create("test.echo", priority=5).pk
    critical = kinetik.create("test.echo", priority="critical").pk
    normal_2 = kinetik.create("test.echo", priority="normal").pk
    high = kinetik.create("test.echo", priority=10).pk
    medium = kinetik.create("test.echo", priority="medium").pk
    above_high = kinetik.create("test.echo", priority=11).pk
    lowest = kinetik.create("test.echo", priority=-100).pk
    run_worker("alpha", concurrency=1)
    assert test_tasks.ran == [critical, above_high, high, medium_int, medium, normal_1, normal_2, low, lowest]


def test_a_delayed_job_waits_for_its_time(run_worker):
    soon = kinetik.create("test.echo", delay="1s")
    later = kinetik.create("test.echo", delay="1h")
    run_worker()  # burst: nothing runnable yet...
    if timezone.now() < soon.run_at:
        assert test_tasks.ran == []
    else:  # ... unless starting the worker took longer than the delay (CI under load: 300 ms did)
        assert test_tasks.ran in ([], [soon.pk])
    time.sleep(max(0.0, (soon.run_at - timezone.now()).total_seconds()) + 0.05)
    run_worker()
    soon.refresh_from_db()
    later.refresh_from_db()
    assert soon.status == Status.COMPLETED
    assert soon.started_at >= soon.run_at
    assert later.status == Status.DELAYED


def test_an_idle_worker_starts_a_delayed_job_when_it_is_due():
    from django_kinetik.worker import Worker as KinetikWorker

    job = kinetik.create("test.echo", delay="500ms")
    worker = KinetikWorker(interval=10, max_jobs=1)
    thread = threading.Thread(target=worker.run)
    thread.start()
    thread.join(timeout=5)
    assert not thread.is_alive()
    job.refresh_from_db()
    assert job.status == Status.COMPLETED
    # Started close to its due time, not after a whole 10s interval.
    assert (job.started_at - job.run_at).total_seconds() < 0.5


def test_concurrency_runs_jobs_at_the_same_time(run_worker):
    jobs = [kinetik.create("test.sleep", {"seconds": 0.4}) for _ in range(4)]
    started = time.monotonic()
    run_worker(concurrency=4)
    assert time.monotonic() - started < 1.2
    assert Job.objects.filter(pk__in=[j.pk for j in jobs], status=Status.COMPLETED).count() == 4


def test_a_worker_only_claims_tasks_it_has(run_worker):
    foreign = kinetik.create("other.service.task", tag="alpha")
    mine = kinetik.create("test.echo")
    run_worker()
    foreign.refresh_from_db()
    mine.refresh_from_db()
    assert (foreign.status, mine.status) == (Status.QUEUED, Status.COMPLETED)


def test_tags_come_from_kinetik_queue_when_none_are_given(run_worker, monkeypatch):
    alpha = kinetik.create("test.echo")
    beta = kinetik.create("test.beta")
    monkeypatch.setenv("KINETIK_QUEUE", "beta")
    run_worker()
    alpha.refresh_from_db()
    beta.refresh_from_db()
    assert (alpha.status, beta.status) == (Status.QUEUED, Status.COMPLETED)


def test_a_kinetik_queue_tag_no_job_can_have_is_refused_before_the_worker_starts(monkeypatch):
    monkeypatch.setenv("KINETIK_QUEUE", "alpha, two words")
    with pytest.raises(CommandError, match="KINETIK_QUEUE: tag 'two words' is not valid; use 1 to 100 characters"):
        call_command("kinetik_worker", "--burst")
    assert not Worker.objects.exists()


def test_without_tags_a_worker_serves_every_registered_tag(run_worker):
    jobs = [kinetik.create(name) for name in ("test.echo", "test.beta", "test.gamma")]
    run_worker()
    assert {job.pk for job in jobs} == set(test_tasks.ran)


def test_log_and_progress_are_recorded_and_signalled(run_worker, received):
    job = kinetik.create("test.report")
    run_worker()
    job.refresh_from_db()
    assert list(JobLog.objects.filter(job=job).values_list("message", "data", "attempt")) == [
        ("starting", {"rows": 3}, 1),
        ("done", None, 1),
    ]
    assert (job.progress_current, job.progress_total, job.progress_data) == (3, 3, {"row": 3})
    progress = [(kw["current"], kw["total"]) for name, kw in received if name == "job_progress"]
    assert progress == [(1, 3), (2, 3), (3, 3)]
    assert [kw["message"] for name, kw in received if name == "job_log"] == ["starting", "done"]


def test_signals_carry_the_job_and_the_task(run_worker, received):
    job = kinetik.create("test.echo")
    run_worker()
    completed = next(kw for name, kw in received if name == "job_completed")
    assert completed["job"].pk == job.pk
    assert completed["job"].result == {"echo": {}, "attempt": 1}
    assert completed["task"].name == "test.echo"
    failed = kinetik.create("test.fail")
    run_worker()
    kwargs = next(kw for name, kw in received if name == "job_failed")
    assert (kwargs["job"].pk, kwargs["error"]) == (failed.pk, "card declined")


def test_a_receiver_that_raises_never_changes_the_outcome(run_worker, caplog):
    def broken(sender, **kwargs):
        raise RuntimeError("receiver bug")

    for signal in (signals.job_started, signals.job_completed):
        signal.connect(broken)
    try:
        job = kinetik.create("test.echo")
        run_worker()
    finally:
        for signal in (signals.job_started, signals.job_completed):
            signal.disconnect(broken)
    job.refresh_from_db()
    assert job.status == Status.COMPLETED
    assert "receiver bug" in caplog.text


def test_queue_empty_is_sent_when_every_tag_runs_dry(run_worker, received):
    kinetik.create("test.echo")
    run_worker("alpha", "beta")
    empty = [kw for name, kw in received if name == "queue_empty"]
    assert len(empty) == 1 and empty[0]["tags"] == ["alpha", "beta"]
    assert received[-1][0] == "queue_empty"


def test_async_actions_run(run_worker):
    job = kinetik.create("test.async")
    run_worker()
    job.refresh_from_db()
    assert job.result == {"async": True, "id": job.pk}


class Tagging:
    """A middleware that writes to the job log before and after the task."""

    def __init__(self, run):
        self.run = run

    def __call__(self, job):
        job.log("before")
        result = self.run(job)
        job.log("after")
        return {"wrapped": result}


class Exploding:
    def __init__(self, run):
        self.run = run

    def __call__(self, job):
        raise RuntimeError("middleware bug")


def test_middleware_from_settings_and_use_wrap_every_execution(run_worker):
    with override_settings(
        KINETIK={"MIDDLEWARE": ["tests.test_worker.Tagging", "django_kinetik.middleware.TimingMiddleware"]}
    ):
        job = kinetik.create("test.echo")
        run_worker()
    job.refresh_from_db()
    assert job.result == {"wrapped": {"echo": {}, "attempt": 1}}
    messages = list(job.logs.values_list("message", flat=True))
    assert messages[0] == "before" and messages[1].startswith("took ") and messages[2] == "after"


def test_a_middleware_that_raises_fails_the_job_not_the_worker(run_worker):
    kinetik.use(Exploding)
    try:
        first = kinetik.create("test.echo")
        second = kinetik.create("test.echo")
        run_worker()
    finally:
        kinetik.middleware.unuse(Exploding)
    for job in (first, second):
        job.refresh_from_db()
        assert (job.status, job.error) == (Status.FAILED, "middleware bug")


def test_paused_tags_are_not_claimed_until_resumed(run_worker):
    job = kinetik.create("test.echo")
    kinetik.pause("alpha")
    assert kinetik.is_paused("alpha")
    run_worker()
    job.refresh_from_db()
    assert job.status == Status.QUEUED
    kinetik.resume("alpha")
    run_worker()
    job.refresh_from_db()
    assert job.status == Status.COMPLETED


def test_the_worker_registers_itself_and_says_when_it_stopped(run_worker):
    kinetik.create_many("test.echo", [{}, {}, {}])
    run_worker(concurrency=2)
    worker = Worker.objects.get()
    assert worker.state == Worker.State.OFFLINE
    # then the queues of the django.tasks backend in TASKS
    assert (worker.jobs_done, worker.concurrency, worker.tags) == (3, 2, ["alpha", "beta", "gamma", "default", "mail"])
    assert worker.stopped_at is not None
    assert set(Job.objects.values_list("worker", flat=True)) == {worker.pk}
    assert set(JobRun.objects.values_list("worker", flat=True)) == {worker.pk}


def test_max_jobs_stops_the_worker_after_that_many(run_worker):
    kinetik.create_many("test.echo", [{} for _ in range(5)])
    run_worker(max_jobs=2, burst=False)
    assert len(test_tasks.ran) == 2
    assert Job.objects.filter(status=Status.QUEUED).count() == 3


def stop_once_a_job_started(**options):
    """Run a worker in a thread, stop it as soon as a job is running, wait for it."""
    from django_kinetik.worker import Worker as KinetikWorker

    worker = KinetikWorker(interval=0.01, **options)
    thread = threading.Thread(target=worker.run)
    thread.start()
    while not test_tasks.ran:
        time.sleep(0.01)
    worker.stop()
    thread.join(timeout=5)
    assert not thread.is_alive()


def test_stop_lets_running_jobs_finish():
    job = kinetik.create("test.sleep", {"seconds": 0.5})
    stop_once_a_job_started()
    job.refresh_from_db()
    assert job.status == Status.COMPLETED


def test_unfinished_jobs_go_back_to_the_queue_after_the_shutdown_timeout():
    job = kinetik.create("test.sleep", {"seconds": 3})
    stop_once_a_job_started(shutdown_timeout=0.2)
    job.refresh_from_db()
    assert (job.status, job.attempts) == (Status.QUEUED, 0)
    assert job.runs.get().outcome == "interrupted"


def test_a_log_line_survives_the_job_rolling_back_its_own_transaction(run_worker):
    job = kinetik.create("test.log_then_roll_back")
    run_worker()
    job.refresh_from_db()
    assert (job.status, job.error) == (Status.FAILED, "the import broke")
    assert list(job.logs.values_list("message", "data")) == [("about to fail", {"step": 1})]


def test_log_lines_show_while_the_job_still_runs(run_worker):
    from tests.conftest import wait_for

    job = kinetik.create("test.log_slowly", {"seconds": 1.5})
    thread = threading.Thread(target=run_worker)
    thread.start()
    try:
        assert wait_for(lambda: job.logs.filter(message="first line").exists(), 1.0)
        assert Job.objects.get(pk=job.pk).status == Status.ACTIVE
    finally:
        thread.join(timeout=10)
    assert list(job.logs.values_list("message", flat=True)) == ["first line", "last line"]


def test_a_job_knows_the_name_of_the_worker_running_it(run_worker, temp_task):
    temp_task("test.whoami", lambda job: job.worker_name, tag="alpha")
    job = kinetik.create("test.whoami")
    run_worker("alpha")
    job.refresh_from_db()
    assert job.result == Worker.objects.get().name
