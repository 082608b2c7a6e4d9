"""A job cancelled while it runs: its code is told at once, and stopped if it does not listen."""

import threading
import time

import pytest
from django.utils import timezone

import django_kinetik as kinetik
from django_kinetik import execution, lifecycle, outcomes
from django_kinetik.backends import WorkerInfo, get_backend
from django_kinetik.models import Job, JobLog, Status, Worker
from django_kinetik.worker import Worker as KinetikWorker
from django_kinetik.worker.cancels import CancelWatch
from django_kinetik.worker.slots import Slots
from tests.conftest import wait_for
from tests.factories import JobFactory

# Each test runs with both claim paths: from the database, and through the Redis fast path.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("claim_path")]


@pytest.fixture
def serve():
    """Start a worker with one slot in a thread (once the test's tasks are defined); stopped at the end."""
    started = []

    def start():
        worker = KinetikWorker(concurrency=1, interval=0.05)
        thread = threading.Thread(target=worker.run)
        thread.start()
        started.append((worker, thread))
        return worker

    yield start
    for worker, thread in started:
        worker.stop()
        thread.join(timeout=15)


def test_a_cancel_reaches_running_code_within_a_second(temp_task, serve):
    started, noticed = threading.Event(), []

    def cooperative(job):
        started.set()
        while not job.closed:
            time.sleep(0.01)
        noticed.append(time.monotonic())
        return "stopped early"

    temp_task("test.cooperative", cooperative, tag="alpha")
    serve()
    job = kinetik.create("test.cooperative")
    assert started.wait(10)
    cancelled_at = time.monotonic()
    assert kinetik.cancel(job.id)
    assert wait_for(lambda: noticed, 5), "the code never saw job.closed"
    assert noticed[0] - cancelled_at < 1.5
    job.refresh_from_db()
    assert job.status == Status.CANCELLED
    assert job.result is None  # what the code returned after the cancel is not kept
    assert list(job.runs.values_list("attempt", "outcome", "error_code")) == [(1, "cancelled", "cancelled")]
    # The slot is free at once for the next job.
    assert kinetik.create("test.echo").wait(timeout="5s") == {"echo": {}, "attempt": 1}


def test_code_that_ignores_a_cancel_is_stopped_after_the_grace_and_its_slot_is_free(temp_task, settings, serve, caplog):
    settings.KINETIK = {**settings.KINETIK, "CANCEL_GRACE": "300ms"}
    started, closed_seen = threading.Event(), []

    def stubborn(job):
        started.set()
        end = time.monotonic() + 4
        while time.monotonic() < end:
            if job.closed and not closed_seen:
                closed_seen.append(time.time())
            job.log("still going")
            job.progress(1, 2)
            time.sleep(0.02)

    temp_task("test.stubborn", stubborn, tag="alpha")
    worker = serve()
    job = kinetik.create("test.stubborn")
    assert started.wait(10)
    cancelled_at = time.monotonic()
    kinetik.cancel(job.id)
    after = kinetik.create("test.echo")
    assert after.wait(timeout="5s") == {"echo": {}, "attempt": 1}
    # The grace, the look that sees the cancel, and the next job's round: well before the stubborn code ends (4 s).
    assert time.monotonic() - cancelled_at < 3.0
    assert wait_for(lambda: closed_seen, 2)
    worker.stop()
    assert wait_for(lambda: Worker.objects.get(pk=worker.worker_id).state == "offline", 10)
    job.refresh_from_db()
    assert job.status == Status.CANCELLED
    assert list(job.runs.values_list("outcome", flat=True)) == ["cancelled"]
    # Lines written after the attempt ended were dropped, with one warning for them all.
    last_line = JobLog.objects.filter(job=job).order_by("-created_at").values_list("created_at", flat=True).first()
    assert last_line is not None and last_line.timestamp() <= closed_seen[0]
    assert sum("after its attempt ended" in record.getMessage() for record in caplog.records) == 1
    assert Worker.objects.get(pk=worker.worker_id).runaway_threads == 1  # the stubborn thread, accounted for
    assert Job.objects.get(pk=after.pk).started_at >= job.finished_at


def test_a_job_that_ends_while_the_watch_looks_is_not_taken_for_a_cancelled_one(caplog):
    backend = get_backend("default")
    worker_id = backend.register_worker(WorkerInfo(name="w", host="h", pid=1, tags=["alpha"], concurrency=1))
    now = timezone.now()
    job = JobFactory(status=Status.ACTIVE, worker_id=worker_id, attempts=1, started_at=now, lease_expires_at=now)
    attempt = execution.prepare(Job.objects.get(pk=job.pk), alias="default")
    slots = Slots(1)
    slots.add(attempt)

    class EndsWhileLooked(type(backend)):
        def gone_from(self, worker_id, ids):
            # The job's code returns and its end is written between the watch's list and its query.
            attempt.settlement = outcomes.completed("done")
            lifecycle.settle(backend, [attempt])
            return super().gone_from(worker_id, ids)

    CancelWatch(EndsWhileLooked("default"), worker_id, slots, grace=5.0).run(now=1.0)
    assert attempt.stopping_since is None and not attempt.context.closed
    assert "while it ran" not in caplog.text
    assert Job.objects.get(pk=job.pk).status == Status.COMPLETED
