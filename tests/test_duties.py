"""A worker's duties, driven with the clock passed in: no sleeps, no worker loop."""

from datetime import timedelta

import pytest
from django.utils import timezone

import django_kinetik as kinetik
from django_kinetik.backends import get_backend
from django_kinetik.models import Job, Status
from django_kinetik.worker import Worker as KinetikWorker
from django_kinetik.worker.duties import (
    RETRY_AFTER_ERROR,
    LeaseRecovery,
    MemoryCheck,
    PausedTags,
    Promotion,
    Upkeep,
)
from tests.factories import JobFactory, WorkerFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def backend():
    return get_backend("default")


def test_promotion_queues_due_jobs_and_comes_back_when_the_next_is_due(backend):
    due = JobFactory(delayed=True, run_at=timezone.now() - timedelta(seconds=1))
    JobFactory(delayed=True, run_at=timezone.now() + timedelta(seconds=30))
    promotion = Promotion(backend, ["alpha"], interval=10.0, has_room=lambda: True)
    assert promotion.run(now=1000.0) is True
    assert Job.objects.get(pk=due.pk).status == Status.QUEUED
    # The next delayed job is 30 s away: look again after the interval (10 s), no later.
    assert promotion.next_at == pytest.approx(1010.0)
    assert promotion.run(now=1010.0) is False  # nothing was due


def test_promotion_waits_while_the_worker_has_no_free_slot(backend):
    due = JobFactory(delayed=True, run_at=timezone.now() - timedelta(seconds=1))
    promotion = Promotion(backend, ["alpha"], interval=5.0, has_room=lambda: False)
    assert promotion.run(now=50.0) is False
    assert promotion.next_at == 55.0
    assert Job.objects.get(pk=due.pk).status == Status.DELAYED


def test_lease_recovery_takes_back_a_dead_workers_job_as_a_ghost(backend):
    dead = WorkerFactory(last_heartbeat=timezone.now() - timedelta(minutes=5))
    orphan = JobFactory(active=True, worker=dead, lease_expires_at=timezone.now() - timedelta(seconds=1))
    me = WorkerFactory()
    recovery = LeaseRecovery(backend, me.pk, lease=6.0, mine=list)
    assert recovery.run(now=100.0) is True
    orphan.refresh_from_db()
    assert (orphan.status, orphan.ghosts, orphan.attempts) == (Status.QUEUED, 1, 0)
    assert list(orphan.runs.values_list("outcome", flat=True)) == ["lost"]
    dead.refresh_from_db()
    assert dead.state == "lost"
    assert recovery.next_at == 102.0  # a third of the lease
    assert recovery.run(now=102.0) is False


def test_lease_recovery_leaves_this_workers_own_late_jobs_alone(backend):
    me = WorkerFactory()
    mine = JobFactory(active=True, worker=me, lease_expires_at=timezone.now() - timedelta(seconds=1))
    recovery = LeaseRecovery(backend, me.pk, lease=6.0, mine=lambda: [mine.pk])
    assert recovery.run(now=0.0) is False
    assert Job.objects.get(pk=mine.pk).status == Status.ACTIVE


def test_paused_tags_are_read_every_interval(backend):
    duty = PausedTags(backend, interval=2.0)
    kinetik.pause("alpha")
    assert duty.run(now=10.0) is True  # changed
    assert duty.paused == {"alpha"} and duty.next_at == 12.0
    assert duty.run(now=12.0) is False
    kinetik.resume("alpha")
    assert duty.run(now=14.0) is True and duty.paused == set()


def test_the_memory_check_asks_for_a_recycle_only_after_jobs_ran():
    reasons = []
    ran = []
    check = MemoryCheck(limit=1, ran_jobs=lambda: bool(ran), recycle=reasons.append)
    check.run(now=0.0)
    assert reasons == [] and check.next_at == 1.0
    ran.append(1)
    check.run(now=1.0)
    assert len(reasons) == 1 and "passed --max-memory" in reasons[0]


class BrokenSchedule:
    """Upkeep with a bug in it: raises every time it runs."""

    def __init__(self):
        self.next_at = 0.0
        self.runs = 0

    def run(self, now):
        self.runs += 1
        raise OverflowError("date value out of range")


def test_a_duty_that_raises_is_logged_and_retried_later_and_the_rest_still_run(backend, caplog):
    broken, paused = BrokenSchedule(), PausedTags(backend, interval=1.0)
    upkeep = Upkeep([broken, paused], "w1")
    upkeep.run(now=100.0)
    assert broken.runs == 1 and paused.next_at == pytest.approx(101.0)  # the next duty ran all the same
    assert "BrokenSchedule failed" in caplog.text and "date value out of range" in caplog.text
    upkeep.run(now=101.0)
    assert broken.runs == 1  # not again at once: it waits
    upkeep.run(now=100.0 + RETRY_AFTER_ERROR)
    assert broken.runs == 2


def test_a_crash_in_upkeep_takes_no_running_job_down(caplog):
    class WorkerWithABug(KinetikWorker):
        def _make_duties(self):
            return [BrokenSchedule(), *super()._make_duties()]

    jobs = kinetik.create_many("test.sleep", [{"seconds": 0.05} for _ in range(3)])
    WorkerWithABug(burst=True, interval=0.01).run()
    assert [Job.objects.get(pk=job.pk).status for job in jobs] == [Status.COMPLETED] * 3
    assert not Job.objects.filter(runs__outcome="lost").exists()
    assert "BrokenSchedule failed" in caplog.text
