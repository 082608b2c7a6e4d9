import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings

from django_kinetik import signals
from django_kinetik.backends import pooling
from django_kinetik.registry import registry
from django_kinetik.worker import Worker
from tests.testapp import tasks as test_tasks

ROOT = Path(__file__).resolve().parent.parent
IN_CI = bool(os.environ.get("CI"))


def _database_reachable() -> str | None:
    """None if the test database server answers, else why not.

    ``PGHOST`` may be a directory (PostgreSQL's unix socket), as libpq allows.
    """
    database = settings.DATABASES["default"]
    if database["ENGINE"].endswith("sqlite3"):
        return None
    host, port = database["HOST"], int(database["PORT"])
    try:
        if host.startswith("/"):
            path = os.path.join(host, f".s.PGSQL.{port}")
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as unix:
                unix.settimeout(3)
                unix.connect(path)
        else:
            socket.create_connection((host, port), timeout=3).close()
    except OSError as error:
        return f"{database['ENGINE']} at {host}:{port} is not reachable: {error}"
    return None


def pytest_collection_modifyitems(config, items):
    # PostgreSQL's own tests (fault injection, query plans): elsewhere they are
    # not collected at all, rather than skipped.
    on_postgresql = settings.DATABASES["default"]["ENGINE"].endswith("postgresql")
    # PostgreSQL has a live feed (NOTIFY), unless a transaction pooler is in the way
    # with nothing around it: tests of life without one do not apply.
    live_feed = on_postgresql and pooling.has_session("default")
    # The suite of jobs on a database of their own runs in a run of its own (test_job_database.py).
    apart = "jobs" in settings.DATABASES

    def elsewhere_only(item):
        if not on_postgresql and ("faults" in item.keywords or "postgresql" in item.keywords):
            return True
        if live_feed and "without_feed" in item.keywords:
            return True
        if not live_feed and "notify" in item.keywords:
            return True
        if "sentinel" in item.keywords and not (on_postgresql and os.environ.get("KINETIK_TEST_SENTINEL")):
            return True  # one environment runs them (tox.ini): each fails Redis over twice
        marker = item.get_closest_marker("jobs_apart")  # jobs_apart(False): the one that starts that run
        return (marker is not None and (not marker.args or marker.args[0])) != apart

    elsewhere = [item for item in items if elsewhere_only(item)]
    if elsewhere:
        config.hook.pytest_deselected(items=elsewhere)
        items[:] = [item for item in items if item not in elsewhere]
    problem = _database_reachable()
    if problem is None:
        return
    if IN_CI:
        raise pytest.UsageError(f"{problem} (CI is set, so the suite may not skip it)")
    skip = pytest.mark.skip(reason=problem)
    for item in items:
        item.add_marker(skip)


@pytest.fixture(autouse=True)
def _reset_ran():
    test_tasks.ran.clear()
    yield
    test_tasks.ran.clear()


@pytest.fixture
def run_worker():
    """Run an in-process worker until nothing is runnable (burst mode)."""

    def run(*tags, **options):
        options.setdefault("burst", True)
        options.setdefault("interval", 0.01)
        return Worker(list(tags) or None, **options).run()

    return run


@pytest.fixture
def temp_task():
    """Define tasks for one test; they are unregistered afterwards."""
    import django_kinetik as kinetik

    defined = []

    def define(name, action=None, **options):
        if action is None:

            def action(job):
                return None

        task = kinetik.task(name, **options)(action)
        defined.append(task.name)
        return task

    yield define
    for name in defined:
        registry.unregister(name)


@pytest.fixture
def received():
    """Every kinetik signal sent during the test, as (signal name, kwargs)."""
    log = []
    receivers = []
    for name in (
        "job_created",
        "job_started",
        "job_progress",
        "job_log",
        "job_completed",
        "job_failed",
        "job_timeout",
        "job_cancelled",
        "job_retrying",
        "queue_empty",
    ):
        signal = getattr(signals, name)

        def receiver(sender, _name=name, **kwargs):
            kwargs.pop("signal", None)
            log.append((_name, kwargs))

        signal.connect(receiver, weak=False)
        receivers.append((signal, receiver))
    yield log
    for signal, receiver in receivers:
        signal.disconnect(receiver)


def worker_env() -> dict[str, str]:
    env = dict(os.environ)
    env["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    env["KINETIK_TEST_WORKER_DB"] = settings.DATABASES["default"]["NAME"]
    if "jobs" in settings.DATABASES:
        env["KINETIK_TEST_WORKER_JOBS_DB"] = settings.DATABASES["jobs"]["NAME"]
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


@pytest.fixture
def start_worker():
    """Start ``manage.py kinetik_worker`` processes against the test database."""
    processes = []

    def start(*args):
        process = subprocess.Popen(
            [sys.executable, "-m", "django", "kinetik_worker", *args],
            cwd=ROOT,
            env=worker_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        processes.append(process)
        return process

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


REDIS_URL = os.environ.get("KINETIK_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture
def redis_fastpath(settings):
    """Turn the Redis fast path on for one test, under a key prefix of its own.

    Skips when Redis is not reachable, except in CI, where that fails the test.
    """
    import uuid

    import redis

    from django_kinetik.fastpath.connection import forget_clients

    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.exceptions.ConnectionError as error:
        if IN_CI:
            pytest.fail(f"Redis at {REDIS_URL} is not reachable: {error} (CI is set, so the test may not skip)")
        pytest.skip(f"Redis at {REDIS_URL} is not reachable: {error}")
    prefix = f"kinetik-test-{uuid.uuid4().hex[:8]}"
    settings.KINETIK = {**settings.KINETIK, "REDIS": REDIS_URL, "REDIS_PREFIX": prefix}
    forget_clients()
    yield client
    forget_clients()
    for key in client.scan_iter(f"{prefix}:*"):
        client.delete(key)
    client.close()


@pytest.fixture(params=["database", "redis"])
def claim_path(request, monkeypatch):
    """Run a test twice: workers claiming from the database, then through the Redis fast path.

    The contract suites (worker, reliability, limits, dependencies) use it, so
    both claim paths keep the same promises. Worker processes the test starts
    get the same fast path through the environment.
    """
    if request.param == "redis":
        request.getfixturevalue("redis_fastpath")
        monkeypatch.setenv("KINETIK_TEST_REDIS", REDIS_URL)
        monkeypatch.setenv("KINETIK_TEST_REDIS_PREFIX", settings.KINETIK["REDIS_PREFIX"])
    return request.param


@pytest.fixture(scope="session", autouse=True)
def _close_feed_connections(django_db_setup):
    """The live feed's own connections close before the test database is dropped."""
    yield
    from django_kinetik import feed

    feed.close_all()
    if settings.POOLER:
        from django.db import connections

        from tests import pgbouncer

        # Every alias behind the pooler (the jobs' own database too, in a run of jobs apart).
        for connection in connections.all():
            pgbouncer.release_database(int(connection.settings_dict["PORT"]), connection.settings_dict["NAME"])


def session_params():
    """psycopg keywords for a connection of a test's own that keeps its session: to the server itself,
    around the pooler of a run behind one (a lock it takes, a pid it reads, stay its own)."""
    from django.db import connection

    from tests import pgbouncer

    return pgbouncer.session_params(connection)


def wait_for(condition, timeout):
    """Poll ``condition`` every 5 ms until it holds (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return False


#: the bearer tokens the API, metrics and feed tests send (``api_tokens`` configures both)
API_TOKEN = "k" * 40
OTHER_API_TOKEN = "o" * 40


@pytest.fixture
def api_tokens(settings):
    settings.KINETIK = {**settings.KINETIK, "API_TOKENS": [OTHER_API_TOKEN, API_TOKEN]}


@pytest.fixture
def api(api_tokens):
    """A client sending the right bearer token, as a script would."""
    from django.test import Client

    return Client(headers={"Authorization": f"Bearer {API_TOKEN}"})


@pytest.fixture
def staff(admin_client):
    """A superuser's browser in the admin."""
    return admin_client
