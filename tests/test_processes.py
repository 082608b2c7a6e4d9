"""Real worker processes on the real database: `manage.py kinetik_worker`."""

import signal
import threading
import time

import pytest
from django.db import transaction
from django.db.models import F

import django_kinetik as kinetik
from django_kinetik.models import Job, JobRun, Status, Worker
from tests.conftest import wait_for
from tests.testapp.models import Execution

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def wait_until(condition, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


def finish(process, timeout=120):
    output, _ = process.communicate(timeout=timeout)
    return process.returncode, output


def follow(process):
    """The process's output lines as they come (read in a thread, which closes the pipe at its end), and that thread."""
    lines = []

    def read():
        with process.stdout:
            for line in process.stdout:
                lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    return lines, reader


def test_three_workers_run_a_thousand_jobs_each_exactly_once(start_worker):
    jobs = kinetik.create_many("test.count", [{"seconds": 0.003} for _ in range(1000)])
    workers = [start_worker("--burst", "-v", "0", "--concurrency", "2") for _ in range(3)]
    results = [finish(process) for process in workers]
    for code, output in results:
        assert code == 0, output
        assert "locked" not in output and "Traceback" not in output, output
    # The task's own record: each job's code ran exactly once, in any process.
    executions = list(Execution.objects.values_list("job_id", flat=True))
    assert sorted(executions) == sorted(job.pk for job in jobs)
    assert Job.objects.filter(status=Status.COMPLETED, attempts=1).count() == 1000
    assert JobRun.objects.count() == 1000
    # The work was shared: more than one process ran jobs.
    assert Execution.objects.values("pid").distinct().count() > 1
    assert sum(Worker.objects.values_list("jobs_done", flat=True)) == 1000


def test_sigterm_lets_the_running_job_finish_then_exits_cleanly(start_worker):
    job = kinetik.create("test.sleep", {"seconds": 1.5})
    process = start_worker("alpha", "--shutdown-timeout", "10s")
    wait_until(lambda: Job.objects.get(pk=job.pk).status == Status.ACTIVE)
    process.send_signal(signal.SIGTERM)
    code, output = finish(process, timeout=15)
    assert code == 0, output
    job.refresh_from_db()
    assert job.status == Status.COMPLETED
    assert Worker.objects.get().state == Worker.State.OFFLINE


def test_sigterm_puts_a_job_that_outlives_the_shutdown_timeout_back(start_worker):
    job = kinetik.create("test.sleep", {"seconds": 30})
    process = start_worker("alpha", "--shutdown-timeout", "300ms")
    wait_until(lambda: Job.objects.get(pk=job.pk).status == Status.ACTIVE)
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    code, output = finish(process, timeout=15)
    assert code == 0, output
    assert time.monotonic() - started < 5
    job.refresh_from_db()
    assert (job.status, job.attempts) == (Status.QUEUED, 0)
    assert job.runs.get().outcome == "interrupted"


def _second_signal(start_worker, job):
    """SIGTERM, then SIGINT while the worker waits for the running job: the exit code, seconds taken, output."""
    process = start_worker("alpha", "--shutdown-timeout", "60s")
    wait_until(lambda: Job.objects.get(pk=job.pk).status == Status.ACTIVE)
    lines, reader = follow(process)
    process.send_signal(signal.SIGTERM)
    # The second signal comes while the worker waits for the running job to finish (it says so).
    assert wait_for(lambda: any("waiting up to 60s for 1 running job" in line for line in lines), 20), "".join(lines)
    return process, lines, reader


def test_a_second_signal_exits_at_once_and_puts_the_running_job_back(start_worker):
    job = kinetik.create("test.sleep", {"seconds": 30})
    process, lines, reader = _second_signal(start_worker, job)
    started = time.monotonic()
    process.send_signal(signal.SIGINT)
    code = process.wait(timeout=10)
    assert time.monotonic() - started < 3
    reader.join(timeout=10)
    output = "".join(lines)
    assert code == 1, output
    assert f"put 1 running job(s) back in the queue: [{job.pk}]" in output
    # Back in the queue now, not when its lease runs out; the attempt is not counted.
    job.refresh_from_db()
    assert (job.status, job.attempts, job.lease_expires_at) == (Status.QUEUED, 0, None)
    assert job.runs.get().outcome == "interrupted"
    assert Worker.objects.get().state == Worker.State.OFFLINE


def test_a_second_signal_does_not_wait_for_a_database_that_does_not_answer(start_worker):
    job = kinetik.create("test.sleep", {"seconds": 30})
    process, lines, reader = _second_signal(start_worker, job)
    # The job's row is locked: the worker's put-back cannot get through.
    with transaction.atomic():
        Job.objects.filter(pk=job.pk).update(priority=F("priority"))
        started = time.monotonic()
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=10)
        took = time.monotonic() - started
    assert took < 3
    reader.join(timeout=10)
    output = "".join(lines)
    assert code == 1, output
    assert "did not answer within 1s, so leases will bring back its running jobs" in output
    # Nothing half-written: still leased to the stopped worker, and its lease brings it back.
    job.refresh_from_db()
    assert job.status == Status.ACTIVE and job.lease_expires_at is not None
    assert not job.runs.exists()
