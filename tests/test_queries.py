"""How many SQL statements kinetik sends: per result read, and per job a worker runs.

The numbers are the ones docs/performance.md states; a change that adds a
round trip to the hot path fails here and updates both. Every statement goes
through Django's cursors, so the counts come from Django's own instruments:
``assertNumQueries`` for a read, and for a worker (whose claim loop, job
threads and settler each have a connection of their own) the same execute
wrapper on every connection opened while it runs.
"""

import threading
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from django.db import connections
from django.db.backends.signals import connection_created
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

import django_kinetik as kinetik
from django_kinetik.models import Job, JobRun, Outcome, Status, Worker
from django_kinetik.tasks_backend import framework
from django_kinetik.tasks_backend import results as task_results
from django_kinetik.worker import Worker as KinetikWorker
from tests.testapp import django_tasks as functions

pytestmark = pytest.mark.django_db(transaction=True)
FAILED, RUNNING = framework.TaskResultStatus.FAILED, framework.TaskResultStatus.RUNNING

# -- reading a result ------------------------------------------------------------


def _a_job_with_history():
    """A running job on its third attempt: one run by a worker still listed, one by a purged one."""
    result = functions.add.enqueue(1, 2)
    kept = Worker.objects.create(name="kept:1:aaa", host="kept", pid=1)
    purged = Worker.objects.create(name="purged:2:bbb", host="purged", pid=2)
    current = Worker.objects.create(name="current:3:ccc", host="current", pid=3)
    now = timezone.now()
    for attempt, worker in enumerate([kept, purged], start=1):
        JobRun.objects.create(
            job_id=result.id,
            attempt=attempt,
            worker=worker,
            outcome=Outcome.FAILED,
            started_at=now - timedelta(minutes=10 - attempt),
            finished_at=now - timedelta(minutes=9 - attempt),
            error=f"attempt {attempt} failed",
            exception="builtins.ConnectionError",
            traceback=f"ConnectionError: attempt {attempt} failed\n",
        )
    purged_id = purged.pk
    purged.delete()
    Job.objects.filter(pk=result.id).update(status=Status.ACTIVE, attempts=3, worker=current, started_at=now)
    return result, [kept.name, str(purged_id), current.name]


def test_get_result_and_refresh_read_a_job_with_its_runs_and_workers_in_one_query(django_assert_num_queries):
    result, worker_ids = _a_job_with_history()
    with django_assert_num_queries(1):
        fetched = functions.add.get_result(result.id)
    with django_assert_num_queries(1):
        result.refresh()
    for read in (fetched, result):
        assert (read.status, read.worker_ids, read.attempts) == (RUNNING, worker_ids, 3)
        assert [error.exception_class for error in read.errors] == [ConnectionError, ConnectionError]
        assert read.errors[1].traceback == "ConnectionError: attempt 2 failed\n"
    # The same result as the one built from the Job object and its runs read apart.
    loaded = task_results.load(Job.objects.get(pk=result.id))
    assert (fetched.worker_ids, fetched.errors, fetched.started_at, fetched.last_attempted_at) == (
        loaded.worker_ids,
        loaded.errors,
        loaded.started_at,
        loaded.last_attempted_at,
    )


def test_the_async_reads_are_one_query_too():
    result, worker_ids = _a_job_with_history()

    async def read():
        fetched = await functions.add.aget_result(result.id)
        await result.arefresh()
        return fetched

    with CaptureQueriesContext(connections["default"]) as queries:
        fetched = async_to_sync(read)()
    assert len(queries) == 2
    assert fetched.worker_ids == result.worker_ids == worker_ids


def test_a_job_that_never_ran_reads_in_one_query(django_assert_num_queries):
    result = functions.add.enqueue(1, 2)
    kinetik.cancel(int(result.id))
    with django_assert_num_queries(1):
        result.refresh()
    assert (result.status, result.worker_ids, result.started_at) == (FAILED, [], None)


# -- a worker's job ----------------------------------------------------------------


class Statements:
    """The statements a worker sends for its jobs, from every connection opened while it records.

    The claims that took jobs, and whatever the job threads and the settler
    send. Not the worker's upkeep: its start and stop, the periodic duties and
    heartbeats, and the claims that found nothing (how often an idle worker
    looks depends on timing; what a job costs does not).
    """

    def __init__(self):
        self.sent: list[str] = []
        self._lock = threading.Lock()
        self._claiming = threading.local()

    def __call__(self, execute, sql, params, many, context):
        thread = threading.current_thread()
        if getattr(self._claiming, "sent", None) is not None:
            self._claiming.sent.append(sql)
        elif thread.name == "kinetik-settler" or thread.name.startswith("kinetik-job"):
            with self._lock:
                self.sent.append(sql)
        return execute(sql, params, many, context)

    def _opened(self, sender, connection, **kwargs):
        connection.execute_wrappers.append(self)

    def __enter__(self):
        connections.close_all()  # this thread's connection is opened again, recorded
        connection_created.connect(self._opened, weak=False)
        return self

    def __exit__(self, *exc):
        connection_created.disconnect(self._opened)

    def claim(self, claim, *args, **kwargs):
        """``claim(*args, **kwargs)``, its statements kept if it took jobs."""
        self._claiming.sent = []
        try:
            jobs = claim(*args, **kwargs)
        finally:
            sent, self._claiming.sent = self._claiming.sent, None
        if jobs:
            with self._lock:
                self.sent += sent
        return jobs


def _counting(backend, statements):
    """``backend``, its claims seen by ``statements``."""

    class Counted(type(backend)):
        def claim(self, *args, **kwargs):
            return statements.claim(super().claim, *args, **kwargs)

        def claim_ids(self, *args, **kwargs):
            return statements.claim(super().claim_ids, *args, **kwargs)

    return Counted(backend.alias)


def job_statements(tag):
    """The statements a burst worker serving ``tag`` sends for the jobs queued there."""
    with Statements() as statements:
        worker = KinetikWorker([tag], burst=True, concurrency=1)
        worker.backend = worker._claims.backend = _counting(worker.backend, statements)
        worker.run()
    return statements.sent


#: statements per job: the claim that took it, the read of its earlier attempts (a
#: django.tasks job's TaskResult), the write of its end (docs/performance.md)
PER_JOB = {
    # claim; BEGIN, the guarded update (telling whether a job waits for it), its JobRun row
    ("sqlite", "kinetik"): 4,
    ("sqlite", "django.tasks"): 5,
    # claim; the settle, one statement
    ("postgresql", "kinetik"): 2,
    ("postgresql", "django.tasks"): 3,
    # MariaDB/MySQL, without RETURNING on UPDATE: the claim's SELECT ... FOR UPDATE SKIP LOCKED,
    # UPDATE and read back; the guarded update, its JobRun row, the look for jobs waiting for it
    ("mysql", "kinetik"): 6,
    ("mysql", "django.tasks"): 7,
}


@pytest.mark.usefixtures("claim_path")
@pytest.mark.parametrize("kind", ["kinetik", "django.tasks"])
def test_a_worker_runs_a_job_in_the_statements_the_docs_state(kind):
    if kind == "kinetik":
        kinetik.create("test.echo", {"to": "a@example.com"})
        tag = "alpha"
    else:
        functions.add.enqueue(2, 3)
        tag = "default"
    sent = job_statements(tag)
    assert Job.objects.get().status == Status.COMPLETED
    assert len(sent) == PER_JOB[(connections["default"].vendor, kind)], sent
