"""The Redis fast path: ids in Redis, jobs in the database, nothing lost when Redis is."""

import threading

import pytest
from django.db import transaction
from django.utils import timezone

import django_kinetik as kinetik
from django_kinetik.fastpath import queue
from django_kinetik.fastpath.connection import forget_clients, queue_key
from django_kinetik.models import Job, JobRun, Status
from django_kinetik.worker import Worker
from tests.conftest import wait_for
from tests.testapp import tasks as test_tasks

pytestmark = pytest.mark.django_db(transaction=True)


def queued_in_redis(client, tag):
    return [int(member) for member in client.zrange(queue_key(tag), 0, -1)]


def test_a_job_is_pushed_to_redis_only_when_its_transaction_commits(redis_fastpath):
    with transaction.atomic():
        job = kinetik.create("test.echo")
        assert queued_in_redis(redis_fastpath, "alpha") == []
    assert queued_in_redis(redis_fastpath, "alpha") == [job.pk]
    try:
        with transaction.atomic():
            kinetik.create("test.echo")
            raise RuntimeError("roll back")
    except RuntimeError:
        pass
    assert queued_in_redis(redis_fastpath, "alpha") == [job.pk]


def test_bulk_creates_are_pushed_and_delayed_jobs_are_not_until_due(redis_fastpath):
    jobs = kinetik.create_many("test.echo", [{"n": n} for n in range(5)])
    kinetik.create("test.echo", delay="1h")
    assert queued_in_redis(redis_fastpath, "alpha") == [job.pk for job in jobs]


def test_workers_take_tags_in_order_and_priorities_within_a_tag(redis_fastpath, run_worker):
    gamma = kinetik.create("test.gamma")
    low = kinetik.create("test.echo", priority="low")
    high = kinetik.create("test.echo", priority="high")
    normal = kinetik.create("test.echo")
    beta = kinetik.create("test.beta", priority="critical")
    run_worker("alpha", "beta", "gamma", concurrency=1)  # one slot: the order is the claim order
    assert test_tasks.ran == [high.pk, normal.pk, low.pk, beta.pk, gamma.pk]
    assert Job.objects.filter(status=Status.COMPLETED).count() == 5
    assert queued_in_redis(redis_fastpath, "alpha") == []


def test_stale_ids_in_redis_never_run_a_job_twice(redis_fastpath, run_worker):
    done = kinetik.create("test.echo")
    run_worker()
    cancelled = kinetik.cancel(kinetik.create("test.echo"))
    fresh = kinetik.create("test.echo")
    # Ids of a finished, a cancelled and a deleted job, as a reconcile racing a claim could leave.
    now = timezone.now()
    queue.push([(done.pk, "alpha", 0, now), (cancelled.pk, "alpha", 0, now), (123456789, "alpha", 0, now)])
    test_tasks.ran.clear()
    run_worker()
    assert test_tasks.ran == [fresh.pk]
    assert JobRun.objects.filter(job=done).count() == 1
    assert Job.objects.get(pk=cancelled.pk).status == Status.CANCELLED


def test_a_flushed_redis_loses_nothing_and_is_refilled(redis_fastpath, run_worker):
    jobs = kinetik.create_many("test.echo", [{"n": n} for n in range(30)])
    for key in redis_fastpath.scan_iter(f"{queue_key('')[:-1]}*"):
        redis_fastpath.delete(key)
    assert queued_in_redis(redis_fastpath, "alpha") == []
    # The reconciler notices the missing state marker and pushes the queue back.
    assert queue.lost_state()
    assert queue.reconcile("default", ["alpha"]) == 30
    assert queued_in_redis(redis_fastpath, "alpha") == [job.pk for job in jobs]
    assert not queue.lost_state()
    redis_fastpath.delete(queue_key("alpha"))
    run_worker()  # the database claim is the fallback
    assert Job.objects.filter(status=Status.COMPLETED).count() == 30


def test_with_redis_unreachable_jobs_are_created_and_run_from_the_database(settings, run_worker, caplog):
    settings.KINETIK = {**settings.KINETIK, "REDIS": "redis://127.0.0.1:1/0", "REDIS_PREFIX": "kinetik-gone"}
    forget_clients()
    try:
        jobs = kinetik.create_many("test.echo", [{"n": n} for n in range(10)])
        job = kinetik.create("test.echo")
        assert "workers will find them in the database" in caplog.text
        run_worker(interval=0.01)
    finally:
        forget_clients()
    assert Job.objects.filter(pk__in=[*(j.pk for j in jobs), job.pk], status=Status.COMPLETED).count() == 11
    assert "Redis is unavailable" in caplog.text


def test_an_idle_worker_wakes_on_the_push_within_milliseconds(redis_fastpath):
    worker = Worker(["alpha"], interval=60.0)
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        assert wait_for(lambda: worker.feed is not None and worker.feed.hungry.is_set(), 10)
        assert wait_for(worker._idle.is_set, 10)  # asleep in its one-minute wait (and its blocking pop) now
        for _ in range(5):
            job = kinetik.create("test.echo")
            assert wait_for(lambda pk=job.pk: Job.objects.get(pk=pk).status == Status.COMPLETED, 15)
            job.refresh_from_db()
            # Woken, not polled: its poll is a minute (a loose bound, for a busy machine).
            assert (job.started_at - job.created_at).total_seconds() < 5
    finally:
        worker.stop()
        thread.join(timeout=10)


def test_a_retry_and_a_promoted_delayed_job_come_back_through_redis(redis_fastpath, run_worker):
    flaky = kinetik.create("test.flaky", {"succeed_on": 2})
    later = kinetik.create("test.echo", delay="150ms")
    assert wait_for(lambda: timezone.now() >= later.run_at, 5)  # due: the burst worker promotes it
    run_worker()
    for job in (flaky, later):
        job.refresh_from_db()
        assert job.status == Status.COMPLETED
    assert queued_in_redis(redis_fastpath, "alpha") == []


def test_a_paused_tag_stays_in_redis_until_resumed(redis_fastpath, run_worker):
    job = kinetik.create("test.echo")
    kinetik.pause("alpha")
    run_worker()
    assert queued_in_redis(redis_fastpath, "alpha") == [job.pk]
    kinetik.resume("alpha")
    run_worker()
    job.refresh_from_db()
    assert job.status == Status.COMPLETED
