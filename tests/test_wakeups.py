"""An idle worker starts new jobs within milliseconds, not after its poll interval."""

import threading
import time

import pytest

import django_kinetik as kinetik
from django_kinetik.models import Job, Status
from django_kinetik.worker import Worker
from tests.conftest import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.notify]


@pytest.fixture
def idle_worker():
    """A worker in a thread that would poll only once a minute."""
    worker = Worker(["alpha"], interval=60.0)
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        assert wait_for(lambda: worker.listener is not None and worker.listener.ready.is_set(), 10)
        assert wait_for(worker._idle.is_set, 10)  # asleep in its one-minute wait now
        yield worker
    finally:  # a worker left running would claim the next tests' jobs
        worker.stop()
        thread.join(timeout=10)


@pytest.mark.postgresql
def test_a_new_job_wakes_an_idle_worker_at_once_on_postgresql(idle_worker):
    job = kinetik.create("test.echo", tag="alpha")
    assert wait_for(lambda: Job.objects.get(pk=job.pk).status == Status.COMPLETED, 15)
    job.refresh_from_db()
    # Woken, not polled: its poll is a minute (a loose bound, for a busy machine).
    assert (job.started_at - job.created_at).total_seconds() < 5


@pytest.mark.postgresql
def test_jobs_created_in_bulk_and_in_a_transaction_wake_it_on_commit(idle_worker):
    from django.db import transaction

    with transaction.atomic():
        jobs = kinetik.create_many("test.echo", [{"n": n} for n in range(20)], tag="alpha")
        # A bare sleep, as nothing happens to wait for: a worker woken before the
        # commit would find nothing visible and go back to sleep, leaving no trace.
        time.sleep(0.3)
        # Not visible, and not announced, before the commit.
        assert Job.objects.filter(status=Status.COMPLETED).count() == 0
    # Woken on the commit, not polled (a minute): a loose bound, for a busy machine.
    assert wait_for(lambda: Job.objects.filter(status=Status.COMPLETED).count() == 20, 10)
    assert {job.pk for job in jobs} == set(Job.objects.values_list("pk", flat=True))


@pytest.mark.postgresql
def test_a_stopping_worker_does_not_wait_for_its_listener(idle_worker):
    """The listener's wait for notifications ends at once when the worker stops, not at its next poll."""
    began = time.monotonic()
    idle_worker.stop()
    assert wait_for(lambda: not idle_worker.listener._thread.is_alive(), 0.2)
    assert time.monotonic() - began < 0.2
