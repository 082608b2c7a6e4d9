"""Jobs whose code no worker has: they wait, saying why, while only older workers lack it; then they fail.

An "older" worker is one started before the job was created (during a rolling
deploy it may run the previous code); a worker started after it that cannot
run it either fails it, ``not_importable``, like any other failure.
"""

import logging
import threading
from contextlib import contextmanager
from io import StringIO

import pytest
from django.core.management import call_command

import django_kinetik as kinetik
from django_kinetik.models import NOT_IMPORTABLE, WAITING_FOR_CODE, Job, JobRun, Status
from django_kinetik.tasks_backend import framework
from django_kinetik.worker import Worker, missing
from tests.conftest import wait_for
from tests.testapp import django_tasks as functions

pytestmark = pytest.mark.django_db(transaction=True)
FAILED, SUCCESSFUL = framework.TaskResultStatus.FAILED, framework.TaskResultStatus.SUCCESSFUL
GONE = "tests.testapp.gone.send_report"
NO_MODULE = "No module named 'tests.testapp.gone'"


@pytest.fixture(autouse=True)
def _look_often(monkeypatch):
    # The look for kinetik jobs of unknown tasks runs every 30s; a test cannot wait that long.
    monkeypatch.setattr(missing, "LOOK_EVERY", 0.05)


@contextmanager
def running(*tags):
    """A worker started (registered) before the block's jobs are created: an older worker."""
    worker = Worker(list(tags) or None, interval=0.05)
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        assert wait_for(lambda: worker._executor is not None, 10)
        yield worker
    finally:
        worker.stop()
        thread.join(10)


def gone_job(tag="default"):
    return kinetik.create(GONE, {"args": [], "kwargs": {}}, tag=tag, task_backend="default")


def job_of(job):
    return Job.objects.get(pk=job.pk)


def waiting_for(job):
    return wait_for(lambda: job_of(job).error_code == WAITING_FOR_CODE, 10)


def health(*args):
    out = StringIO()
    code = 0
    try:
        call_command("kinetik_health", "--min-workers", "0", *args, stdout=out, stderr=StringIO())
    except SystemExit as exit:
        code = exit.code
    return code, out.getvalue().strip()


def test_an_older_worker_leaves_the_job_says_why_and_a_newer_one_fails_it(run_worker, caplog, received):
    with caplog.at_level(logging.WARNING, logger="django_kinetik.worker"), running() as old:
        job = gone_job()
        other = functions.add.enqueue(1, 1)
        assert waiting_for(job)
        assert wait_for(lambda: functions.add.get_result(other.id).status == SUCCESSFUL, 10)
        later = functions.add.enqueue(2, 2)  # the worker is not stuck on the job it cannot run
        assert wait_for(lambda: functions.add.get_result(later.id).status == SUCCESSFUL, 10)
    job = job_of(job)
    assert (job.status, job.attempts, job.worker_id) == (Status.QUEUED, 0, None)
    assert job.waiting_reason == (
        f"waiting for a worker that can import {GONE}: worker {old.name} (started before the job) cannot: {NO_MODULE}"
    )
    assert not JobRun.objects.filter(job=job).exists()
    # Claimed once, then left alone (no loop claiming it again and again).
    assert len([r for r in caplog.records if GONE in r.getMessage()]) == 1
    assert "django_kinetik.dispatch" not in caplog.text and "django.dispatch" not in caplog.text

    run_worker()  # started after the job: nothing newer will come

    job = job_of(job)
    assert (job.status, job.error_code, job.waiting_reason) == (Status.FAILED, NOT_IMPORTABLE, "")
    worker = JobRun.objects.get(job=job).worker
    assert job.error == (
        f"no worker can import {GONE}: worker {worker.name}, started after the job was created, cannot: {NO_MODULE}"
    )
    assert [name for name, kwargs in received if kwargs.get("job") and kwargs["job"].pk == job.pk][-1] == "job_failed"
    result = functions.add.get_backend().get_result(str(job.pk))
    assert result.status == FAILED
    assert result.errors[0].exception_class_path == "django_kinetik.exceptions.TaskNotImportable"


def test_its_failure_sends_task_finished_and_django_logs_it_as_an_error(run_worker, caplog):
    finished = []

    def receiver(sender, task_result, **kwargs):
        finished.append(task_result)

    caplog.set_level(logging.INFO)
    framework.task_finished.connect(receiver, weak=False)
    try:
        job = gone_job()
        run_worker()
    finally:
        framework.task_finished.disconnect(receiver)
    (result,) = finished
    assert (result.id, result.status, result.task.module_path) == (str(job.pk), FAILED, GONE)
    (record,) = [r for r in caplog.records if r.getMessage().startswith(f"Task id={job.pk} ") and r.exc_info]
    assert record.levelno == logging.ERROR and record.getMessage().endswith("state=FAILED")
    assert str(record.exc_info[1]) == job_of(job).error and NO_MODULE in str(record.exc_info[1])


def test_a_name_that_is_not_a_task_names_the_tasks_framework(run_worker):
    job = kinetik.create(
        "tests.testapp.django_tasks.calls", {"args": [], "kwargs": {}}, tag="default", task_backend="default"
    )
    run_worker()
    job = job_of(job)
    assert job.status == Status.FAILED
    assert job.error.endswith(f"cannot: it is a list, not a Task of {framework.NAME}")


def test_a_kinetik_task_no_worker_here_defines_waits_saying_why_and_is_never_failed(run_worker, caplog):
    # Another service's workers may serve the tag too and define it: kinetik jobs name a task, not code.
    job = kinetik.create("report v2", {}, tag="default")
    with caplog.at_level(logging.WARNING, logger="django_kinetik.worker"), running() as first:
        assert waiting_for(job)
        later = kinetik.create("report v2", {}, tag="default")
        assert waiting_for(later)
    why = (
        f"waiting for a worker that defines task 'report v2': worker {first.name}, "
        "which serves tag 'default', has no task of that name"
    )
    assert job_of(job).waiting_reason == why
    run_worker()  # a second worker without it: the first note stands, nothing fails
    for each in (job_of(job), job_of(later)):
        assert (each.status, each.attempts, each.waiting_reason) == (Status.QUEUED, 0, why)
    # Looked at every 50 ms here, yet said once per job.
    assert len([r for r in caplog.records if "report v2" in r.getMessage()]) == 2


def test_a_worker_that_does_not_serve_the_tag_never_touches_it(run_worker):
    django_job = gone_job(tag="reports")
    kinetik_job = kinetik.create("report v2", {}, tag="reports")
    run_worker("default")
    for job in (job_of(django_job), job_of(kinetik_job)):
        assert (job.status, job.attempts, job.error_code) == (Status.QUEUED, 0, "")


def test_the_admin_the_api_and_kinetik_health_say_why_it_waits(admin_client):
    with running() as old:
        job = gone_job()
        assert waiting_for(job)
    why = f"waiting for a worker that can import {GONE}: worker {old.name} (started before the job) cannot: {NO_MODULE}"
    escaped = why.replace("'", "&#x27;")

    page = admin_client.get(f"/admin/django_kinetik/job/{job.pk}/change/").content.decode()
    assert "Why it waits" in page and escaped in page
    listing = admin_client.get("/admin/django_kinetik/job/").content.decode()
    assert f'title="{escaped}">waiting for its code</span>' in listing

    body = admin_client.get(f"/kinetik/api/jobs/{job.pk}").json()
    assert (body["status"], body["waiting"], body["error_code"]) == ("queued", why, WAITING_FOR_CODE)

    assert health() == (0, f"ok: database up, no queued job older than 5m; job {job.pk} is {why}")
    code, line = health("--max-age", "0s")
    assert code == 1
    assert line.startswith(f"unhealthy: queued job {job.pk} ({GONE}, tag default) has waited ")
    assert line.endswith(f": {why}")


def test_a_job_that_runs_after_all_says_nothing_of_waiting(run_worker, temp_task):
    with running() as first:
        job = kinetik.create("report v3", {}, tag="default")
        assert waiting_for(job)
    assert first.name in job_of(job).waiting_reason
    temp_task("report v3")  # the newer deploy has it
    run_worker()
    job = job_of(job)
    assert (job.status, job.error, job.error_code, job.waiting_reason) == (Status.COMPLETED, "", "", "")


@pytest.mark.slow
def test_real_worker_processes_an_old_one_leaves_it_a_new_one_fails_it(start_worker):
    old = start_worker("default", "--interval", "0.1")
    assert wait_for(lambda: live_workers().exists(), 30)
    job = gone_job()
    assert wait_for(lambda: job_of(job).error_code == WAITING_FOR_CODE, 30)
    name = live_workers().get().name
    assert job_of(job).waiting_reason == (
        f"waiting for a worker that can import {GONE}: worker {name} (started before the job) cannot: {NO_MODULE}"
    )
    old.terminate()
    old.communicate(timeout=30)

    new = start_worker("default", "--burst")
    output, _ = new.communicate(timeout=60)
    assert new.returncode == 0, output
    job = job_of(job)
    assert (job.status, job.error_code) == (Status.FAILED, NOT_IMPORTABLE)
    assert job.error.startswith(f"no worker can import {GONE}: worker ") and job.error.endswith(NO_MODULE)
    assert name not in job.error


def live_workers():
    from django_kinetik.models import Worker as WorkerRow

    return WorkerRow.objects.filter(state=WorkerRow.State.ONLINE)
