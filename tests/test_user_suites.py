"""kinetik in a user's own test suite: it passes, and leaves nothing behind.

The example project's tests (example_project/demo/tests.py) are what a Django
team writes: jobs created in a TestCase, with captureOnCommitCallbacks, in a
TransactionTestCase, in eager mode, django.tasks enqueued and read back, a
wait that times out. They run here the two ways users run them,
``manage.py test`` and pytest-django, on this run's database. Before, on
PostgreSQL, the feed's threads kept connections to the test database open,
so ``manage.py test`` printed OK, could not drop the database, and exited 1;
pytest-django left the database behind.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time

import django
import pytest
from django.conf import settings
from django.db import connection

import django_kinetik as kinetik
from django_kinetik.models import Job
from tests.conftest import REDIS_URL, ROOT

ENGINE = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]  # sqlite3, postgresql or mysql
EXAMPLE_DATABASE = {"sqlite3": "sqlite", "postgresql": "postgres", "mysql": "mysql"}[ENGINE]
# Its own database name, so parallel test runs do not share one.
SUFFIX = re.sub(r"\W", "_", os.environ.get("TOX_ENV_NAME", "local"))
EXAMPLE_DB = f"kinetik_example_{SUFFIX}"


def _environment(tmp_path, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DJANGO_", "KINETIK_TEST"))}
    env["EXAMPLE_DATABASE"] = EXAMPLE_DATABASE
    env["EXAMPLE_DB"] = str(tmp_path / "example.sqlite3") if ENGINE == "sqlite3" else EXAMPLE_DB
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def _leftover_databases() -> list[str]:
    """Test databases of the example project still on the server."""
    name = f"test_{EXAMPLE_DB}"
    with connection.cursor() as cursor:
        if ENGINE == "postgresql":
            cursor.execute("SELECT datname FROM pg_database WHERE datname = %s", [name])
        elif ENGINE == "mysql":
            cursor.execute("SELECT schema_name FROM information_schema.schemata WHERE schema_name = %s", [name])
        else:
            return []
        return [row[0] for row in cursor.fetchall()]


def _run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


RUNNERS: dict[str, list[str]] = {
    "manage.py test": [sys.executable, "manage.py", "test", "example_project.demo", "--noinput"],
    "pytest-django": [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "-o",
        "addopts=",
        "--ds=example_project.settings",
        "example_project/demo/tests.py",
    ],
}


# Each run costs seconds (a test database made and dropped): every runner, and
# the Redis feed, on one Django; 6.x runs the suite the Django way only.
CASES = [("manage.py test", "")]
if django.VERSION[:2] == (5, 2):
    CASES.append(("pytest-django", ""))
    if ENGINE != "sqlite3":  # with Redis the feed is the same on every database
        CASES.append(("manage.py test", "redis"))


@pytest.mark.django_db
@pytest.mark.parametrize(("runner", "feed"), CASES)
def test_the_example_projects_own_suite_passes_and_drops_its_database(runner, feed, request, tmp_path):
    for name in _leftover_databases():  # an earlier failed run's: this run must show its own
        with connection.cursor() as cursor:
            cursor.execute(f"DROP DATABASE {connection.ops.quote_name(name)}")
    extra = {"EXAMPLE_REDIS": REDIS_URL} if feed else {}
    if feed:
        request.getfixturevalue("redis_fastpath")  # Redis is up (or, outside CI, the test skips)
    done = _run(RUNNERS[runner], _environment(tmp_path, **extra))
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert "11 passed" in output or "Ran 11 tests" in output, output[-3000:]
    assert "being accessed by other users" not in output
    assert _leftover_databases() == []


def _kinetik_threads() -> list[str]:
    return [thread.name for thread in threading.enumerate() if thread.name.startswith("kinetik-")]


def _kinetik_connections() -> list[str]:
    if ENGINE != "postgresql":
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT application_name FROM pg_stat_activity WHERE datname = current_database() "
            "AND application_name LIKE 'kinetik %%' AND pid <> pg_backend_pid()"
        )
        return [row[0] for row in cursor.fetchall()]


def _settles(check, within: float = 5.0):
    deadline = time.monotonic() + within
    while check() and time.monotonic() < deadline:
        time.sleep(0.01)
    return check()


@pytest.mark.django_db(transaction=True)
def test_no_kinetik_thread_or_connection_outlives_its_use():
    """In a web or test process the feed lets go a second after it last had something to do."""
    job = kinetik.create("test.echo", {"n": 1})  # committed: its "created" event goes out
    with pytest.raises(kinetik.WaitTimeout):
        job.wait(timeout="100ms")  # the shared listener connects, and the wait ends
    kinetik.cancel(Job.objects.get(pk=job.pk))  # its end is announced
    assert _settles(_kinetik_threads) == []
    assert _settles(_kinetik_connections) == []
