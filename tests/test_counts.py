"""The stats' counts stay the true counts through every way a job changes (kept by triggers on PostgreSQL)."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection, connections
from django.db.models import Count
from django.utils import timezone

import django_kinetik as kinetik
from django_kinetik.backends import get_backend
from django_kinetik.models import Job, JobCount, Status
from django_kinetik.worker.purge import Purger
from tests.conftest import wait_for
from tests.factories import FinishedJobFactory, JobFactory

pytestmark = pytest.mark.django_db(transaction=True)


def true_counts():
    """Every job row counted, by (task, tag, status): what the stats must say."""
    rows = Job.objects.order_by().values_list("task", "tag", "status").annotate(n=Count("id"))
    return {(task, tag, status): n for task, tag, status, n in rows}


def counted():
    return {(task, tag, status): n for task, tag, status, n in kinetik.jobs.job_counts() if n}


def assert_stats_are_true():
    expected = true_counts()
    assert counted() == expected
    stats = kinetik.stats()
    assert stats["total"] == sum(expected.values())
    for status in Status.values:
        assert stats["status"][status] == sum(n for (_, _, s), n in expected.items() if s == status)


def test_counts_follow_create_run_fail_retry_cancel_and_purge(run_worker, settings):
    kinetik.create_many("test.echo", [{}] * 5)
    kinetik.create_many("test.fail", [{}] * 3)
    kinetik.create("test.beta", {}, delay="1h")
    assert_stats_are_true()
    run_worker()
    assert counted()[("test.echo", "alpha", Status.COMPLETED)] == 5
    assert counted()[("test.fail", "alpha", Status.FAILED)] == 3
    assert_stats_are_true()
    failed = Job.objects.filter(status=Status.FAILED).first()
    kinetik.retry(failed)
    assert counted()[("test.fail", "alpha", Status.FAILED)] == 2
    assert_stats_are_true()
    kinetik.cancel(failed)
    kinetik.cancel(Job.objects.get(task="test.beta"))
    assert counted()[("test.beta", "beta", Status.CANCELLED)] == 1
    assert_stats_are_true()
    # The purge deletes what is past its keep time; the counts lose exactly those.
    Job.objects.filter(status=Status.COMPLETED).update(finished_at=timezone.now() - timedelta(days=2))
    settings.KINETIK = {**settings.KINETIK, "PURGE_FAILED_AFTER": "1h"}
    Job.objects.filter(status=Status.FAILED).update(finished_at=timezone.now() - timedelta(hours=2))
    Purger(get_backend()).run_pass()
    assert counted() == {("test.fail", "alpha", Status.CANCELLED): 1, ("test.beta", "beta", Status.CANCELLED): 1}
    assert_stats_are_true()


def test_retries_that_end_in_success_count_once(run_worker):
    kinetik.create_many("test.flaky", [{"succeed_on": 3}] * 4)
    run_worker()
    assert counted() == {("test.flaky", "alpha", Status.COMPLETED): 4}
    assert_stats_are_true()


def test_direct_orm_changes_and_deletes_are_counted_too():
    FinishedJobFactory.create_batch(3, task="test.beta", tag="beta")
    JobFactory.create_batch(2)
    assert_stats_are_true()
    # A user's own queries: moving finished jobs to another tag, deleting some, cleaning.
    one = Job.objects.filter(status=Status.COMPLETED).values_list("pk", flat=True)[0]
    Job.objects.filter(pk=one).update(tag="other")
    assert counted()[("test.beta", "other", Status.COMPLETED)] == 1
    assert_stats_are_true()
    Job.objects.filter(tag="other").delete()
    assert_stats_are_true()
    kinetik.clean()
    assert counted() == {("test.echo", "alpha", Status.QUEUED): 2}
    assert_stats_are_true()


def test_an_emptied_table_counts_nothing():
    FinishedJobFactory.create_batch(3)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"TRUNCATE {Job._meta.db_table} CASCADE")
        else:
            Job.objects.all().delete()
    assert counted() == {}
    assert kinetik.stats()["total"] == 0


@pytest.mark.slow
def test_several_worker_processes_keep_the_counts_true(start_worker):
    kinetik.create_many("test.count", [{}] * 600)
    kinetik.create_many("test.fail", [{}] * 150)
    kinetik.create_many("test.flaky", [{"succeed_on": 2}] * 150)
    workers = [start_worker("--burst", "-v", "0", "--concurrency", "4") for _ in range(3)]
    for process in workers:
        output, _ = process.communicate(timeout=180)
        assert process.returncode == 0, output
    assert counted() == {
        ("test.count", "alpha", Status.COMPLETED): 600,
        ("test.fail", "alpha", Status.FAILED): 150,
        ("test.flaky", "alpha", Status.COMPLETED): 150,
    }
    assert_stats_are_true()
    if connection.vendor == "postgresql":
        # Each worker connection counted into its own rows; once they have closed,
        # a purge pass folds them into one row per task, tag and status.
        assert JobCount.objects.exclude(shard=0).values("shard").distinct().count() > 1
        if not settings.POOLER:
            shards = JobCount.objects.exclude(shard=0).values_list("shard", flat=True)
            assert wait_for(lambda: not _connected(shards), 10)
        Purger(get_backend()).run_pass()
        # Only the rows of connections still open are left (behind a pooler, its server
        # connections outlive the workers' and keep theirs until they close).
        left = set(JobCount.objects.exclude(shard=0).values_list("shard", flat=True))
        assert _connected(left) == len(left)
        if not settings.POOLER:
            assert left <= {_own_pid()}
            assert JobCount.objects.filter(shard=0).count() == 3
        assert_stats_are_true()


def _connected(pids):
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", [list(pids)])
        return cursor.fetchone()[0]


def _own_pid():
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


@pytest.mark.postgresql
def test_the_fold_leaves_live_connections_rows_alone():
    FinishedJobFactory.create_batch(2)
    mine = _own_pid()
    JobCount.objects.create(shard=123_456_789, task="test.echo", tag="alpha", status=Status.COMPLETED, count=5)
    JobCount.objects.create(shard=123_456_789, task="test.echo", tag="alpha", status=Status.FAILED, count=0)
    before = counted()
    assert get_backend().fold_counts() == 2
    assert counted() == before
    shards = set(JobCount.objects.values_list("shard", flat=True))
    if settings.POOLER:  # each transaction may be on another of the pooler's server connections
        assert 123_456_789 not in shards and _connected(shards - {0}) == len(shards - {0})
    else:
        assert shards == {0, mine}
    assert JobCount.objects.get(shard=0).count == 5
