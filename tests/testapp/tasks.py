"""Tasks the test suite runs; discovered like any app's tasks.py."""

import os
import threading
import time

from django.db import connection

import django_kinetik as kinetik

from .models import Effect, Execution

#: job ids in the order an in-process worker ran them
ran: list[int] = []
ran_lock = threading.Lock()


def _record(job):
    with ran_lock:
        ran.append(job.id)


@kinetik.task("test.echo", tag="alpha")
def echo(job):
    _record(job)
    return {"echo": job.data, "attempt": job.attempt}


@kinetik.task("test.beta", tag="beta")
def beta(job):
    _record(job)
    return "beta"


@kinetik.task("test.gamma", tag="gamma")
def gamma(job):
    _record(job)
    return "gamma"


class PaymentError(Exception):
    def __init__(self, message, code):
        super().__init__(message)
        self.code = code


@kinetik.task("test.fail", tag="alpha", retries=0)
def fail(job):
    _record(job)
    raise PaymentError(job.data.get("message", "card declined"), code="E_CARD")


@kinetik.task("test.flaky", tag="alpha", retries=3, retry_delay=0)
def flaky(job):
    _record(job)
    if job.attempt < job.data.get("succeed_on", 2):
        raise ConnectionError(f"attempt {job.attempt} failed")
    return {"attempt": job.attempt}


@kinetik.task("test.sleep", tag="alpha")
def sleep(job):
    _record(job)
    time.sleep(job.data.get("seconds", 0.1))
    return "slept"


@kinetik.task("test.report", tag="alpha")
def report(job):
    job.log("starting", {"rows": 3})
    for row in range(1, 4):
        job.progress(row, 3, {"row": row})
    job.log("done")
    return {"rows": 3}


@kinetik.task("test.bad_result", tag="alpha")
def bad_result(job):
    return {"when": object()}


@kinetik.task("test.count", tag="alpha")
def count(job):
    """Records each execution in the database, from whichever process runs it."""
    Execution.objects.create(job_id=job.id, attempt=job.attempt, pid=os.getpid())
    time.sleep(job.data.get("seconds", 0))
    return job.id


@kinetik.task("test.async", tag="alpha")
async def async_task(job):
    return {"async": True, "id": job.id}


@kinetik.task("test.hang", tag="alpha", timeout="500ms")
def hang(job):
    """Sleeps far past its timeout, then tries to report (which must be ignored)."""
    _record(job)
    time.sleep(job.data.get("seconds", 3))
    job.log("too late")
    job.progress(1, 1)
    return "too late"


@kinetik.task("test.spin", tag="alpha", timeout="1s")
def spin(job):
    """Never returns and never yields to anything: only killing the process stops it."""
    while True:
        pass


@kinetik.task("test.effect", tag="alpha", retries=5, retry_delay=0)
def effect(job):
    """The fault-injection job: one side effect per job, runs watched for overlap.

    A PostgreSQL advisory lock keyed by the job id is held for the whole run by
    this thread's connection; it vanishes with the connection if the process dies.
    If another run of the same job still holds it, two runs overlapped.
    """
    with _session_cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [job.id])
        locked = cursor.fetchone()[0]
        try:
            _, created = Effect.objects.get_or_create(job_id=job.id)
            Execution.objects.create(
                job_id=job.id, attempt=job.attempt, pid=os.getpid(), duplicate=not created, overlapped=not locked
            )
            time.sleep(job.data.get("seconds", 0))
        finally:
            if locked:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [job.id])
    return job.id


_direct = threading.local()


def _session_cursor():
    """A cursor whose session is this thread's own, to hold the run's advisory lock.

    Django's connection, except behind a pooler: in transaction mode each statement
    may land on another server connection, so a session lock would stay behind
    on one that other clients then use (and the watch would see overlaps that
    never were). There a direct connection of this thread's holds it; it closes,
    and the lock goes, with the process.
    """
    from django.conf import settings

    if not settings.POOLER:
        return connection.cursor()
    direct = getattr(_direct, "connection", None)
    if direct is None or direct.closed:
        import psycopg

        from tests import pgbouncer

        params = pgbouncer.session_params(connection)
        params.pop("cursor_factory", None)
        direct = _direct.connection = psycopg.connect(**params, autocommit=True)
    return direct.cursor()


@kinetik.task("test.log_then_roll_back", tag="alpha", retries=0)
def log_then_roll_back(job):
    from django.db import transaction

    with transaction.atomic():
        Effect.objects.create(job_id=job.id)
        job.log("about to fail", {"step": 1})
        raise RuntimeError("the import broke")


@kinetik.task("test.log_slowly", tag="alpha")
def log_slowly(job):
    job.log("first line")
    time.sleep(job.data.get("seconds", 1.0))
    job.log("last line")


@kinetik.task("test.tick", tag="alpha")
def tick(job):
    """Stubborn code that never touches the database: it notes the time in a file of its own
    (one per job and process) every 20 ms for ``seconds``, whatever happens to the worker."""
    path = os.path.join(job.data["directory"], f"{job.id}-{os.getpid()}")
    end = time.monotonic() + job.data.get("seconds", 5)
    with open(path, "a") as ticks:
        while time.monotonic() < end:
            ticks.write(f"{time.time()}\n")
            ticks.flush()
            time.sleep(0.02)
    return "ticked"


@kinetik.task("test.query_slowly", tag="alpha", retries=0)
def query_slowly(job):
    """A query that takes a while (PostgreSQL), so that a database restart hits it mid-flight."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_sleep(%s)", [job.data.get("seconds", 1.0)])
    return "queried"


@kinetik.task("test.bad_sql", tag="alpha", retries=0)
def bad_sql(job):
    """The task's own SQL is wrong: that is the job's fault, whatever the database does."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM kinetik_no_such_table")


@kinetik.task("test.kill_own_connection", tag="alpha", retries=0)
def kill_own_connection(job):
    """A connection-level error while the database stays up (PostgreSQL): the code's doing, not an outage."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(pg_backend_pid())")
