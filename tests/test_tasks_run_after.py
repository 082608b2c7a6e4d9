"""``run_after`` through KinetikTaskBackend: the value given comes back, and it orders the queue.

Runs on Django 6.x (``django.tasks``) and on 5.2 (the ``django-tasks``
backport), through ``framework`` as test_tasks_backend.py does. The times
carry microseconds: every database keeps them (PostgreSQL timestamptz,
MariaDB/MySQL DATETIME(6), SQLite text), so the round trip is exact.
"""

from datetime import UTC, datetime, timedelta

import pytest
from asgiref.sync import async_to_sync
from django.utils import timezone

from django_kinetik.fastpath import queue
from django_kinetik.fastpath.connection import queue_key
from django_kinetik.models import Job, Status
from django_kinetik.tasks_backend import framework
from tests.testapp import django_tasks as functions

pytestmark = pytest.mark.django_db(transaction=True)
READY, SUCCESSFUL = framework.TaskResultStatus.READY, framework.TaskResultStatus.SUCCESSFUL


@pytest.fixture(autouse=True)
def _clear_calls():
    functions.calls.clear()


def _at(offset: timedelta):
    """A time ``offset`` from now with a microsecond part no rounding to milliseconds would keep."""
    return (timezone.now() + offset).replace(microsecond=123457)


@pytest.mark.parametrize(
    "offset",
    [timedelta(hours=-1), timedelta(seconds=-1), timedelta(hours=2)],
    ids=["an-hour-ago", "a-second-ago", "in-two-hours"],
)
def test_run_after_comes_back_exactly_as_given(offset):
    run_after = _at(offset)
    enqueued = functions.add.using(run_after=run_after).enqueue(1, 2)
    fetched = functions.add.get_result(enqueued.id)
    assert enqueued.task.run_after == run_after
    assert fetched.task.run_after == run_after
    assert fetched.task == enqueued.task
    enqueued.refresh()
    assert enqueued.task.run_after == run_after

    async def read():
        fetched = await functions.add.aget_result(enqueued.id)
        await enqueued.arefresh()
        return fetched

    assert async_to_sync(read)().task.run_after == run_after
    assert enqueued.task.run_after == run_after


@pytest.mark.parametrize("year", [1, 999])
def test_a_run_after_older_than_every_database_stores_is_refused_before_anything_is_written(year):
    ancient = datetime(year, 6, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="before the year 1000"):
        functions.add.using(run_after=ancient).enqueue(1, 2)
    assert not Job.objects.exists()
    oldest = datetime(1000, 1, 2, tzinfo=UTC)
    enqueued = functions.add.using(run_after=oldest).enqueue(1, 2)
    assert functions.add.get_result(enqueued.id).task.run_after == oldest


def test_the_running_task_sees_its_run_after_too(run_worker):
    run_after = _at(timedelta(minutes=-10))
    given = functions.own_run_after.using(run_after=run_after).enqueue()
    unset = functions.own_run_after.enqueue()
    run_worker()
    given.refresh()
    unset.refresh()
    assert (given.status, unset.status) == (SUCCESSFUL, SUCCESSFUL)
    assert (datetime.fromisoformat(given.return_value), unset.return_value) == (run_after, None)


def test_no_run_after_comes_back_as_none():
    enqueued = functions.add.enqueue(1, 2)
    fetched = functions.add.get_result(enqueued.id)
    assert (enqueued.task.run_after, fetched.task.run_after) == (None, None)
    assert fetched.task == enqueued.task == functions.add


def test_a_past_run_after_is_ready_at_once_and_a_future_one_waits():
    past = functions.add.using(run_after=_at(timedelta(minutes=-5))).enqueue(1, 2)
    future = functions.add.using(run_after=_at(timedelta(minutes=5))).enqueue(1, 2)
    statuses = dict(Job.objects.values_list("pk", "status"))
    assert (statuses[int(past.id)], statuses[int(future.id)]) == (Status.QUEUED, Status.DELAYED)
    assert (past.status, future.status) == (READY, READY)


def test_while_it_waits_to_retry_run_after_stays_and_the_job_says_when_it_runs_next(run_worker, settings):
    flaky = {"retries": 1, "retry_delay": "1h"}
    settings.KINETIK = {**settings.KINETIK, "TASKS": {"tests.testapp.django_tasks.flaky": flaky}}
    run_after = _at(timedelta(seconds=-30))
    enqueued = functions.flaky.using(run_after=run_after).enqueue(1)
    unset = functions.flaky.enqueue(1)
    run_worker()
    for result, given in [(enqueued, run_after), (unset, None)]:
        result.refresh()
        assert (result.status, len(result.errors)) == (READY, 1)
        assert result.task.run_after == given
        assert functions.flaky.get_result(result.id).task.run_after == given
        # When it may run next is the job's run_at (kinetik's model), an hour on.
        job = Job.objects.get(pk=result.id)
        assert job.status == Status.DELAYED
        assert job.run_at > timezone.now() + timedelta(minutes=59)


def _enqueue_out_of_order():
    """Four mails of one priority, enqueued in an order that is not their run_after order."""
    functions.send_mail.using(run_after=_at(timedelta(minutes=-1))).enqueue("one minute ago")
    functions.send_mail.enqueue("none")
    functions.send_mail.using(run_after=_at(timedelta(minutes=-3))).enqueue("three minutes ago")
    functions.send_mail.using(run_after=_at(timedelta(minutes=-2))).enqueue("two minutes ago")


#: earliest run_after first; a job without one is ready from when it was enqueued
EARLIEST_FIRST = ["three minutes ago", "two minutes ago", "one minute ago", "none"]


def test_equal_priority_runs_the_earliest_run_after_first(run_worker):
    _enqueue_out_of_order()
    run_worker("mail", concurrency=1)
    assert [args for name, args in functions.calls] == EARLIEST_FIRST


def test_the_redis_fast_path_orders_by_run_after_too(redis_fastpath, run_worker):
    _enqueue_out_of_order()
    ids = [int(member) for member in redis_fastpath.zrange(queue_key("mail"), 0, -1)]
    to = dict(Job.objects.values_list("pk", "data__args__0"))
    assert [to[job_id] for job_id in ids] == EARLIEST_FIRST
    run_worker("mail", concurrency=1)
    assert [args for name, args in functions.calls] == EARLIEST_FIRST


def test_the_redis_fast_path_keeps_priority_first_then_run_at_then_id():
    now = timezone.now()
    earlier, later = now - timedelta(microseconds=200), now
    # Higher priority wins over an earlier run_at; then the earlier run_at; then the smaller id.
    order = [(10, later, 9), (0, earlier, 10), (0, later, 5), (0, later, 6), (-5, earlier, 1)]
    scored = sorted(order, key=lambda entry: (queue.score(entry[0], entry[1]), queue.member(entry[2])))
    assert scored == order
    assert queue.member(999) < queue.member(1000)
