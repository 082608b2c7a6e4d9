"""Timeouts, lost workers, retries in full: what a user sees when things go wrong."""

import threading
import time
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

import django_kinetik as kinetik
from django_kinetik.models import Job, JobLog, Status, Worker
from django_kinetik.values.backoff import retry_delay
from django_kinetik.values.options import TaskOptions
from django_kinetik.worker import Worker as KinetikWorker
from tests.conftest import wait_for
from tests.factories import JobFactory, WorkerFactory
from tests.testapp import tasks as test_tasks

# Each test runs with both claim paths: from the database, and through the Redis fast path.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("claim_path")]


def job_threads_alive(besides=()):
    """This process's job threads still running (abandoned ones included), but for ``besides``."""
    return [
        thread for thread in threading.enumerate() if thread.name.startswith("kinetik-job-") and thread not in besides
    ]


def went_round(worker, times=2, timeout=5):
    """Wait until ``worker`` re-read the paused tags ``times`` times more (each read starts a loop round).

    Two reads mean a whole round (its read, then its claim) began after the call.
    """
    for _ in range(times):
        seen = worker._paused.next_at
        if not wait_for(lambda seen=seen: worker._paused.next_at > seen, timeout):
            return False
    return True


def test_a_job_past_its_timeout_is_marked_timeout_within_a_second(run_worker, received):
    job = kinetik.create("test.hang", {"seconds": 3})
    started = time.monotonic()
    run_worker(concurrency=1)
    job.refresh_from_db()
    assert job.status == Status.TIMEOUT
    assert (job.error, job.error_code) == ("timed out after 500ms", "timeout")
    ran_for = (job.finished_at - job.started_at).total_seconds()
    assert 0.5 <= ran_for < 1.5
    assert time.monotonic() - started < 2.5  # the worker did not wait for the code to return
    assert job.runs.get().outcome == "timeout"
    assert [kw["error"] for name, kw in received if name == "job_timeout"] == ["timed out after 500ms"]


def test_a_timed_out_jobs_late_logs_progress_and_result_are_ignored(run_worker):
    job = kinetik.create("test.hang", {"seconds": 0.8})
    earlier = job_threads_alive()  # abandoned by earlier tests, still asleep
    run_worker()
    # The abandoned thread wakes up, tries to report, and exits.
    assert wait_for(lambda: not job_threads_alive(besides=earlier), 10)
    job.refresh_from_db()
    assert job.status == Status.TIMEOUT and job.result is None
    assert job.progress_current is None
    assert not JobLog.objects.filter(job=job).exists()


def test_the_slot_of_a_timed_out_job_comes_back(run_worker):
    stuck = kinetik.create("test.hang", {"seconds": 3})
    after = kinetik.create("test.echo")
    run_worker(concurrency=1)
    after.refresh_from_db()
    stuck.refresh_from_db()
    assert stuck.status == Status.TIMEOUT
    assert after.status == Status.COMPLETED
    assert after.started_at >= stuck.finished_at
    worker = Worker.objects.get()
    assert worker.runaway_threads == 1  # accounted for: the thread still sleeps


def test_a_timed_out_job_follows_its_retry_policy(run_worker):
    job = kinetik.create("test.hang", {"seconds": 2}, retries=1, retry_delay=0)
    run_worker()
    job.refresh_from_db()
    assert (job.status, job.attempts) == (Status.TIMEOUT, 2)
    assert list(job.runs.values_list("outcome", flat=True)) == ["timeout", "timeout"]


def test_a_per_job_timeout_overrides_the_tasks(run_worker):
    job = kinetik.create("test.sleep", {"seconds": 2}, timeout="200ms")
    run_worker()
    job.refresh_from_db()
    assert (job.status, job.error) == (Status.TIMEOUT, "timed out after 200ms")


def _orphan(**fields):
    """A job left active by a worker that vanished: its lease ran out a while ago."""
    dead = WorkerFactory(last_heartbeat=timezone.now() - timedelta(minutes=5))
    defaults = {
        "status": Status.ACTIVE,
        "attempts": 1,
        "worker": dead,
        "started_at": timezone.now() - timedelta(minutes=5),
        "lease_expires_at": timezone.now() - timedelta(minutes=4),
    }
    defaults.update(fields)
    return JobFactory(**defaults), dead


def test_a_job_whose_worker_vanished_is_taken_back_as_a_ghost_and_run(run_worker, received):
    job, dead = _orphan()
    run_worker()
    job.refresh_from_db()
    assert (job.status, job.ghosts, job.attempts) == (Status.COMPLETED, 1, 1)
    runs = list(job.runs.values_list("outcome", "worker", "error_code"))
    assert runs == [("lost", dead.pk, "lost"), ("completed", runs[1][1], "")]
    dead.refresh_from_db()
    assert dead.state == Worker.State.LOST


def test_a_job_taken_back_from_a_dead_worker_runs_ahead_of_the_backlog(run_worker):
    backlog = kinetik.create_many("test.echo", [{"n": n} for n in range(5)])
    ghost, _ = _orphan(task="test.echo", tag="alpha")
    test_tasks.ran.clear()
    run_worker(concurrency=1)
    # Recovery runs once the first claim of the first round is made: after that, the ghost is next.
    assert test_tasks.ran.index(ghost.pk) <= 1
    assert set(test_tasks.ran) == {ghost.pk, *(job.pk for job in backlog)}


def test_a_job_lost_more_often_than_its_ghost_retries_fails_as_lost(run_worker, received):
    job, _ = _orphan(ghosts=3)
    run_worker()
    job.refresh_from_db()
    assert (job.status, job.error_code) == (Status.FAILED, "lost")
    assert "gave up after 3 ghost retries" in job.error
    assert any(name == "job_failed" and kw["job"].pk == job.pk for name, kw in received)


def test_ghost_retries_can_be_set_per_job(run_worker):
    job, _ = _orphan(options={"ghost_retries": 0})
    run_worker()
    job.refresh_from_db()
    assert (job.status, job.error_code) == (Status.FAILED, "lost")


def test_a_slow_job_whose_worker_is_alive_is_never_taken_from_under_it():
    with override_settings(KINETIK={"LEASE": "1s", "INTERVAL": "50ms"}):
        job = kinetik.create("test.sleep", {"seconds": 2.5})
        owner = KinetikWorker(interval=0.05, burst=True)
        thread = threading.Thread(target=owner.run)
        thread.start()
        assert wait_for(lambda: test_tasks.ran, 10)
        # Another worker keeps looking for expired leases the whole time: until the owner is done.
        other = KinetikWorker(interval=0.05, max_jobs=1)

        def stop_the_other_once_the_owner_is_done():
            thread.join(timeout=10)
            other.stop()

        stopper = threading.Thread(target=stop_the_other_once_the_owner_is_done)
        stopper.start()
        other.run()
        stopper.join(timeout=10)
    job.refresh_from_db()
    assert job.status == Status.COMPLETED
    assert list(job.runs.values_list("outcome", flat=True)) == ["completed"]
    assert test_tasks.ran == [job.pk]


def test_retry_on_lists_the_exceptions_worth_retrying(run_worker, temp_task):
    def raises(job):
        raise {"network": ConnectionError, "bug": ValueError}[job.data["kind"]]("boom")

    temp_task("retry_on.task", raises, tag="alpha", retries=2, retry_delay=0, retry_on=["builtins.ConnectionError"])
    network = kinetik.create("retry_on.task", {"kind": "network"})
    bug = kinetik.create("retry_on.task", {"kind": "bug"})
    run_worker()
    network.refresh_from_db()
    bug.refresh_from_db()
    assert (network.status, network.attempts) == (Status.FAILED, 3)
    assert (bug.status, bug.attempts) == (Status.FAILED, 1)


def test_backoff_is_capped_and_jittered():
    exponential = TaskOptions(retry_delay=10, backoff="exponential", retry_max_delay=60)
    assert [retry_delay(exponential, attempt) for attempt in range(1, 6)] == [10, 20, 40, 60, 60]
    linear = TaskOptions(retry_delay=10, backoff="linear", retry_max_delay=None)
    assert [retry_delay(linear, attempt) for attempt in (1, 2, 10)] == [10, 20, 100]
    jittered = TaskOptions(retry_delay=100, retry_jitter=0.2)
    delays = {retry_delay(jittered, 1) for _ in range(200)}
    assert min(delays) >= 80 and max(delays) <= 120
    assert len(delays) > 100  # spread, not one value


def test_bad_retry_options_are_refused_at_definition():
    with pytest.raises(kinetik.TaskDefinitionError, match="retry_jitter must be from 0 to 1"):
        kinetik.task("bad.jitter", retry_jitter=2)(lambda job: None)
    with pytest.raises(kinetik.TaskDefinitionError, match="dotted path"):
        kinetik.task("bad.retry_on", retry_on=["ConnectionError"])(lambda job: None)
    with pytest.raises(TypeError, match="retry_on cannot be set for one job"):
        kinetik.create("test.echo", retry_on=["builtins.ValueError"])


def test_pause_reaches_a_running_worker_within_one_interval():
    worker = KinetikWorker(interval=0.05)
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        first = kinetik.create("test.echo")
        first.wait(timeout="5s")
        kinetik.pause("alpha")
        assert wait_for(lambda: "alpha" in worker._paused.paused, 5)
        paused = kinetik.create("test.echo")
        assert went_round(worker)  # it looked for work since, and left the job alone
        paused.refresh_from_db()
        assert paused.status == Status.QUEUED
        kinetik.resume("alpha")
        assert paused.wait(timeout="5s") == {"echo": {}, "attempt": 1}
    finally:
        worker.stop()
        thread.join(timeout=10)


def test_orphans_of_a_dropped_claim_are_not_renewed_by_their_worker(run_worker):
    """A job claimed by a statement whose answer never arrived is not kept alive forever."""
    worker = WorkerFactory()
    orphan = JobFactory(
        status=Status.ACTIVE,
        attempts=1,
        worker=worker,
        started_at=timezone.now(),
        lease_expires_at=timezone.now() + timedelta(seconds=1),
    )
    from django_kinetik.backends import get_backend

    get_backend().heartbeat(worker.pk, 60, running=[], stats={"jobs_done": 0})
    orphan.refresh_from_db()
    assert orphan.lease_expires_at < timezone.now() + timedelta(seconds=2)
    assert Job.objects.get(pk=orphan.pk).status == Status.ACTIVE
