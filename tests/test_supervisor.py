"""``kinetik_worker --processes N``: the supervisor and its children, as real processes."""

import os
import signal
import time

import pytest

import django_kinetik as kinetik
from django_kinetik.models import Job, Status, Worker
from tests.testapp.models import Execution

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def wait_until(condition, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


def finish(process, timeout=60):
    output, _ = process.communicate(timeout=timeout)
    return process.returncode, output


def test_processes_share_the_work_and_children_are_recycled_after_max_jobs(start_worker):
    kinetik.create_many("test.count", [{"seconds": 0.01} for _ in range(40)])
    code, output = finish(start_worker("--processes", "2", "--max-jobs", "5", "--burst", "-v", "1"))
    assert code == 0, output
    assert Execution.objects.count() == 40
    # 40 jobs, at most 5 per process: at least 8 processes ran them.
    assert Execution.objects.values("pid").distinct().count() >= 8
    assert "recycled (--max-jobs or --max-memory reached)" in output


def test_a_child_that_passes_max_memory_is_replaced(start_worker, temp_task):
    kinetik.create_many("test.count", [{} for _ in range(6)])
    # Any Python process with Django loaded is above 1 MB: every child recycles after one job.
    code, output = finish(start_worker("--processes", "1", "--concurrency", "1", "--max-memory", "1MB", "--burst"))
    assert code == 0, output
    assert "passed --max-memory" in output
    assert Execution.objects.values("pid").distinct().count() == 6


def test_a_timed_out_job_in_a_process_is_killed_and_the_process_replaced(start_worker):
    spinning = kinetik.create("test.spin")  # a CPU-bound loop that never returns, timeout 1s
    after = kinetik.create("test.echo")
    process = start_worker("--processes", "1", "--concurrency", "1", "-v", "1")
    wait_until(lambda: Job.objects.get(pk=after.pk).status == Status.COMPLETED)
    spinning.refresh_from_db()
    assert (spinning.status, spinning.error) == (Status.TIMEOUT, "timed out after 1s")
    assert (spinning.finished_at - spinning.started_at).total_seconds() < 2
    process.send_signal(signal.SIGTERM)
    code, output = finish(process)
    assert code == 0, output
    assert "ended itself to kill a timed-out job" in output
    # The spinning child is gone: no process of ours is left burning a core.
    pids = set(Worker.objects.values_list("pid", flat=True))
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_a_killed_child_is_replaced_and_its_job_comes_back_through_its_lease(start_worker, monkeypatch):
    monkeypatch.setenv("KINETIK_TEST_LEASE", "1s")
    job = kinetik.create("test.sleep", {"seconds": 30})
    process = start_worker("alpha", "--processes", "1", "-v", "1")
    wait_until(lambda: Job.objects.get(pk=job.pk).status == Status.ACTIVE)
    victim = Job.objects.select_related("worker").get(pk=job.pk).worker.pid
    os.kill(victim, signal.SIGKILL)
    # Within about a lease the replacement takes the job back and starts it again.
    wait_until(lambda: Job.objects.get(pk=job.pk).runs.filter(outcome="lost").exists(), timeout=15)
    wait_until(lambda: Job.objects.get(pk=job.pk).status == Status.ACTIVE, timeout=15)
    job.refresh_from_db()
    assert (job.ghosts, job.attempts) == (1, 1)
    assert job.worker.pid != victim
    process.send_signal(signal.SIGTERM)
    code, output = finish(process)
    assert code == 0, output
    assert f"(pid {victim}) was killed by signal 9" in output


def test_sigterm_to_the_supervisor_stops_every_child_gracefully(start_worker):
    jobs = kinetik.create_many("test.sleep", [{"seconds": 1} for _ in range(2)])
    process = start_worker("alpha", "--processes", "2")
    wait_until(lambda: Job.objects.filter(status=Status.ACTIVE).count() == 2)
    process.send_signal(signal.SIGTERM)
    code, output = finish(process)
    assert code == 0, output
    assert Job.objects.filter(pk__in=[j.pk for j in jobs], status=Status.COMPLETED).count() == 2
    assert set(Worker.objects.values_list("state", flat=True)) == {Worker.State.OFFLINE}
