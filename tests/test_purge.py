"""Workers delete finished jobs past their keep time (PURGE_AFTER, PURGE_FAILED_AFTER, remove_on_complete)."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

import django_kinetik as kinetik
from django_kinetik import removals
from django_kinetik.backends import get_backend
from django_kinetik.backends.postgresql import advisory_key
from django_kinetik.conf import read_settings
from django_kinetik.models import Job, JobLog, JobRun, Status
from django_kinetik.worker import purge
from django_kinetik.worker.purge import Purger
from tests.conftest import session_params
from tests.factories import FinishedJobFactory, JobFactory, JobLogFactory, JobRunFactory

pytestmark = pytest.mark.django_db(transaction=True)


def finished(status=Status.COMPLETED, ago=timedelta(days=2), **fields):
    job = FinishedJobFactory(status=status, finished_at=timezone.now() - ago, **fields)
    JobLogFactory(job=job)
    JobRunFactory(job=job)
    return job


def test_a_worker_deletes_completed_jobs_a_day_old_with_their_logs_and_runs(run_worker):
    old = [finished() for _ in range(3)]
    recent = finished(ago=timedelta(hours=1))
    old_failure = finished(Status.FAILED, error="kept for people to look at")
    queued = JobFactory()
    run_worker()
    remaining = set(Job.objects.values_list("pk", flat=True))
    assert remaining == {recent.pk, old_failure.pk, queued.pk}
    assert not JobLog.objects.filter(job_id__in=[job.pk for job in old]).exists()
    assert not JobRun.objects.filter(job_id__in=[job.pk for job in old]).exists()


def test_failed_timed_out_and_cancelled_jobs_go_after_purge_failed_after(run_worker, settings):
    settings.KINETIK = {**settings.KINETIK, "PURGE_FAILED_AFTER": "1h"}
    for status in (Status.FAILED, Status.TIMEOUT, Status.CANCELLED):
        finished(status, ago=timedelta(hours=2))
    young = finished(Status.FAILED, ago=timedelta(minutes=10))
    run_worker()
    assert list(Job.objects.values_list("pk", flat=True)) == [young.pk]


def test_purge_after_none_keeps_completed_jobs(run_worker, settings):
    settings.KINETIK = {**settings.KINETIK, "PURGE_AFTER": None}
    job = finished(ago=timedelta(days=30))
    run_worker()
    assert Job.objects.filter(pk=job.pk).exists()


def test_a_pass_deletes_in_small_batches_and_comes_back_sooner_for_the_rest(monkeypatch):
    monkeypatch.setattr(purge, "BATCH", 10)
    monkeypatch.setattr(purge, "MAX_BATCHES", 2)
    for _ in range(35):
        finished()
    purger = Purger(get_backend("default"))
    assert purger.run_pass() == (20, True)  # two batches of ten, more is due
    assert purger.run_pass() == (15, False)
    assert not Job.objects.exists()


def test_a_backlog_is_purged_pass_after_pass_at_a_quarter_of_the_loop(monkeypatch):
    """With more due, the next pass comes after three times this one's time: a worker deletes
    as fast as a busy drain finishes jobs (a fixed second between passes capped it at 2,000/s)."""
    monkeypatch.setattr(purge, "BATCH", 10)
    monkeypatch.setattr(purge, "MAX_BATCHES", 2)
    for _ in range(45):
        finished()
    purger = Purger(get_backend("default"))
    now = time.monotonic()
    started = time.monotonic()
    purger.run(now)
    took = time.monotonic() - started
    assert Job.objects.count() == 25
    assert purger.next_at - now <= max(purge.SOONEST, took * purge.BACKLOG_PACE) + 1e-6
    passes = 1
    while Job.objects.exists():
        purger.run(purger.next_at)
        passes += 1
    assert passes == 3
    assert purger.next_at - now > 30  # nothing more due: back to about once a minute


@pytest.mark.postgresql
def test_one_worker_at_a_time_purges():
    import psycopg

    finished()
    params = session_params()  # its lock is a session's, as an old worker's was
    with psycopg.connect(**{**params, "autocommit": True}) as other_worker:
        other_worker.execute("SELECT pg_advisory_lock(%s)", [advisory_key(purge.LOCK_NAME)])  # it is purging
        Purger(get_backend("default")).run(now=float("inf"))
        assert Job.objects.count() == 1
        # Let go before the close: a closed connection's server process ends, and drops its locks,
        # a moment after the client has gone (CI under load saw the next pass find the lock still held).
        other_worker.execute("SELECT pg_advisory_unlock(%s)", [advisory_key(purge.LOCK_NAME)])
    Purger(get_backend("default")).run(now=float("inf"))
    assert Job.objects.count() == 0


def test_remove_on_complete_deletes_a_job_once_it_completes(run_worker, temp_task, monkeypatch):
    monkeypatch.setattr(removals, "REMOVE_GRACE", 0.0)
    temp_task("purge.ephemeral", lambda job: "done", tag="alpha", remove_on_complete=True)

    def broken(job):
        raise ValueError("kept: it failed")

    temp_task("purge.ephemeral_broken", broken, tag="alpha", remove_on_complete=True)
    gone = kinetik.create("purge.ephemeral")
    kept = kinetik.create("purge.ephemeral_broken")
    by_option = kinetik.create("test.echo", remove_on_complete=True)
    normal = kinetik.create("test.echo")
    run_worker()
    assert set(Job.objects.values_list("pk", flat=True)) == {kept.pk, normal.pk}
    assert not JobRun.objects.filter(job_id__in=[gone.pk, by_option.pk]).exists()
    assert Job.objects.get(pk=kept.pk).status == Status.FAILED


def test_a_job_waited_on_can_still_be_read_for_a_few_seconds_after_it_completes(run_worker, temp_task):
    temp_task("purge.read_me", lambda job: {"answer": 42}, tag="alpha", remove_on_complete=True)
    job = kinetik.create("purge.read_me")
    run_worker()  # the grace period has not passed when the burst worker stops
    job.refresh_from_db()
    assert (job.status, job.result) == (Status.COMPLETED, {"answer": 42})


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ({"PURGE_AFTER": "soon"}, "kinetik.E003"),
        ({"PURGE_FAILED_AFTER": []}, "kinetik.E003"),
        ({"API_TOKENS": "one-token"}, "kinetik.E004"),
        ({"API_TOKENS": ["short"]}, "kinetik.E010"),
    ],
)
def test_bad_purge_and_token_settings_are_reported(raw, problem):
    _, problems = read_settings(raw)
    assert [found.id for found in problems] == [problem]


def test_purge_settings_are_read():
    parsed, problems = read_settings({"PURGE_AFTER": "2h", "PURGE_FAILED_AFTER": "7d", "API_TOKENS": ["t" * 32]})
    assert problems == []
    assert (parsed.purge_after, parsed.purge_failed_after, parsed.api_tokens) == (7200.0, 604800.0, ("t" * 32,))
    assert read_settings({})[0].purge_after == 86400.0
