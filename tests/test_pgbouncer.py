"""Workers behind Debian's PgBouncer, in transaction and in session mode (see docs/topology.md).

The test starts the pooler itself (tests/pgbouncer.py) and runs real worker
processes through it; the test process itself talks to PostgreSQL directly
(unless the whole run goes through a pooler, KINETIK_TEST_PGBOUNCER). What a
user would notice: every job done exactly once, no "prepared statement does
not exist", no advisory lock left behind on a pooled server connection, idle
workers woken at once where a direct LISTEN connection is configured, and
polling, with the check's warning, where none is.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest
from django.conf import settings
from django.core import checks
from django.db import connection

import django_kinetik as kinetik
from django_kinetik.backends import get_backend, pooling
from django_kinetik.backends.postgresql import advisory_key
from django_kinetik.models import Job, Status
from django_kinetik.worker.purge import LOCK_NAME
from tests import pgbouncer
from tests.conftest import IN_CI, ROOT, wait_for, worker_env

pytestmark = [pytest.mark.postgresql, pytest.mark.slow]

if not shutil.which("pgbouncer") and not os.path.exists("/usr/sbin/pgbouncer"):
    if IN_CI:
        raise RuntimeError("pgbouncer is not installed (apt-get install pgbouncer); CI may not skip these tests")
    pytest.skip("pgbouncer is not installed (apt-get install pgbouncer)", allow_module_level=True)


@pytest.fixture(scope="module", autouse=True)
def _release_the_test_database(django_db_setup, django_db_blocker):
    """The poolers this module used close their connections to the test database before it is dropped."""
    yield
    with django_db_blocker.unblock():
        name = connection.settings_dict["NAME"]
    for mode in pgbouncer.MODES:
        pgbouncer.release_database(pgbouncer.port_for(mode, settings.TEST_SUFFIX), name)


def _pooled_env(mode: str, *, listen_direct: bool = False) -> dict[str, str]:
    pgbouncer.ensure_running(mode, settings.TEST_SUFFIX)
    env = worker_env()
    env["KINETIK_TEST_PGBOUNCER"] = mode
    env.pop("KINETIK_TEST_LISTEN_DIRECT", None)
    if listen_direct:
        env["KINETIK_TEST_LISTEN_DIRECT"] = "1"
    return env


def _worker(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "django", "kinetik_worker", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _advisory_locks_held(key: int) -> int:
    with connection.cursor() as cursor:
        # This database's only: other test runs on the server (CI runs several at once) purge too.
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = %s"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            [key & 0xFFFFFFFF],
        )
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("mode", "listen_direct"), [("transaction", False), ("transaction", True), ("session", False)], ids=str
)
def test_two_workers_drain_through_the_pooler(mode, listen_direct):
    kinetik.create_many("test.echo", [{} for _ in range(400)])
    env = _pooled_env(mode, listen_direct=listen_direct)
    workers = [_worker(env, "--burst") for _ in range(2)]
    outputs = [worker.communicate(timeout=90)[0] for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], outputs
    assert Job.objects.filter(status=Status.COMPLETED).count() == 400
    assert Job.objects.filter(attempts__gt=1).count() == 0
    assert not any("prepared statement" in output for output in outputs), outputs
    # The purge pass took its lock per transaction: none is left with a server connection the pooler keeps.
    assert _advisory_locks_held(advisory_key(LOCK_NAME)) == 0


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("listen_direct", [True, False], ids=["listen_database", "polling"])
def test_an_idle_worker_behind_a_transaction_pooler(listen_direct):
    """With LISTEN_DATABASE, NOTIFY wakes it at once; without, it finds the job at its next look."""
    interval = 3.0
    env = _pooled_env("transaction", listen_direct=listen_direct)
    worker = _worker(env, "--interval", str(interval), "--concurrency", "1")
    try:
        time.sleep(interval + 3)  # started, past its first look, idle
        created = time.monotonic()
        job = kinetik.create("test.echo")
        assert wait_for(lambda: Job.objects.get(pk=job.pk).status == Status.COMPLETED, interval + 10)
        took = time.monotonic() - created
    finally:
        worker.terminate()
        output = worker.communicate(timeout=30)[0]
    assert worker.returncode == 0, output
    if listen_direct:
        assert took < 1.0, f"not woken by NOTIFY: {took:.2f}s"
    else:
        assert took < interval + 2, output


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("pooled", "threshold", "prepared"),
    [(False, None, 0), (False, 0, 1), (True, 0, 0)],
    ids=["django_default", "threshold_set", "threshold_set_behind_a_transaction_pooler"],
)
def test_statements_are_prepared_only_where_a_session_keeps_them(pooled, threshold, prepared):
    """A prepared statement lives in one server session: behind a transaction pooler another
    client's statement of the same name would run instead, or none."""
    connection.close()  # a new session: nothing prepared yet
    before = {key: connection.settings_dict.get(key) for key in ("DISABLE_SERVER_SIDE_CURSORS", "HOST", "PORT")}
    # To the server itself, even in a run behind a pooler: what a session holds is the question.
    connection.settings_dict.update(
        DISABLE_SERVER_SIDE_CURSORS=pooled, HOST=pgbouncer.SERVER[0], PORT=str(pgbouncer.SERVER[1])
    )
    try:
        connection.ensure_connection()
        connection.connection.prepare_threshold = threshold  # as OPTIONS {"prepare_threshold": 0} would
        backend = get_backend()
        for _ in range(3):
            backend.runs_of(1)
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_prepared_statements")
            found = cursor.fetchone()[0]
    finally:
        connection.settings_dict.update(before)
        connection.close()
    assert found == prepared


def test_the_check_says_what_a_transaction_pooler_costs(settings):
    settings.KINETIK = {k: v for k, v in settings.KINETIK.items() if k != "LISTEN_DATABASE"}
    pooled = connection.settings_dict.get("DISABLE_SERVER_SIDE_CURSORS")
    connection.settings_dict["DISABLE_SERVER_SIDE_CURSORS"] = True  # the same dict as settings.DATABASES'
    try:
        messages = [m for m in checks.run_checks(tags=["kinetik"]) if m.id.startswith("kinetik.")]
        assert [m.id for m in messages] == ["kinetik.W004"]
        assert "every INTERVAL" in messages[0].msg and "LISTEN_DATABASE" in messages[0].hint
        assert not get_backend().supports_notify
        settings.KINETIK = {**settings.KINETIK, "LISTEN_DATABASE": {"HOST": "127.0.0.1", "PORT": 5432}}
        assert not [m for m in checks.run_checks(tags=["kinetik"]) if m.id.startswith("kinetik.")]
        assert get_backend().supports_notify
    finally:
        connection.settings_dict["DISABLE_SERVER_SIDE_CURSORS"] = pooled


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("nowhere", "kinetik.E016"),
        ({"NAME": "elsewhere"}, "kinetik.E016"),
        (["127.0.0.1"], "kinetik.E016"),
    ],
)
def test_a_bad_listen_database_is_refused(settings, value, problem):
    settings.KINETIK = {**settings.KINETIK, "LISTEN_DATABASE": value}
    # (Behind a pooler, kinetik.W004 too: the bad value is not used, so nothing goes around it.)
    messages = [m for m in checks.run_checks(tags=["kinetik"]) if m.id.startswith("kinetik.E")]
    assert [m.id for m in messages] == [problem]
    assert "LISTEN_DATABASE" in messages[0].msg


def test_listen_database_connects_to_the_jobs_database_by_its_own_way(settings):
    settings.KINETIK = {**settings.KINETIK, "LISTEN_DATABASE": {"PORT": "5999", "OPTIONS": {"sslmode": "disable"}}}
    params = pooling.session_params("default")
    assert params["port"] == "5999" and params["sslmode"] == "disable"
    assert params["dbname"] == connection.settings_dict["NAME"]  # always the jobs database (here the test one)


def test_listen_database_may_name_an_alias(settings, monkeypatch):
    from django.db import connections

    direct = {**connections.settings["default"], "NAME": "another_name", "PORT": "5998", "OPTIONS": {"pool": True}}
    monkeypatch.setitem(connections.settings, "direct", direct)
    monkeypatch.setitem(settings.DATABASES, "direct", direct)  # (often the same dict)
    settings.KINETIK = {**settings.KINETIK, "LISTEN_DATABASE": "direct"}
    params = pooling.session_params("default")
    assert params["port"] == "5998" and "pool" not in params  # Django's own OPTIONS stay Django's
    assert params["dbname"] == connection.settings_dict["NAME"]  # its NAME is not used: the same database
