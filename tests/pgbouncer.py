"""Debian's PgBouncer between the test suite and PostgreSQL, started by the tests themselves.

``KINETIK_TEST_PGBOUNCER=transaction`` (or ``session``) with
``KINETIK_TEST_DB=postgres`` puts every connection of the run through a
PgBouncer in that pool mode: the test process's, and those of the worker
processes the tests start (they read the same settings, find it running and
use it; they never start one). Each tox environment and mode gets its own
port and directory, so environments can run side by side. The process that
started it stops it at exit, and waits until it is gone.

Before the test database is dropped, :func:`release_database` makes PgBouncer
close its pooled server connections to it (``KILL``, then ``RESUME``): a
pooler keeps them open, and PostgreSQL refuses to drop a database in use.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import zlib
from pathlib import Path

#: PostgreSQL itself, behind the pooler
SERVER = (os.environ.get("PGHOST", "127.0.0.1"), int(os.environ.get("PGPORT", "5432")))
MODES = ("transaction", "session")

_CONFIG = """\
[databases]
* = host={server_host} port={server_port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {directory}/users.txt
admin_users = postgres
pool_mode = {mode}
max_client_conn = 2000
default_pool_size = {pool_size}
max_db_connections = {pool_size}
server_lifetime = 3600
server_idle_timeout = 60
server_login_retry = 1
# Hand out server connections in turn (not the last one freed), so a client that
# relied on its session (a prepared statement, a lock) would see it fail here.
server_round_robin = 1
ignore_startup_parameters = extra_float_digits,options
logfile = {directory}/pgbouncer.log
pidfile = {directory}/pgbouncer.pid
"""


def port_for(mode: str, suffix: str) -> int:
    """The port of this environment's pooler in ``mode``: stable, so worker processes find it."""
    return 16400 + zlib.crc32(f"{suffix}:{mode}".encode()) % 2000


def _answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def ensure_running(mode: str, suffix: str) -> int:
    """Start PgBouncer in ``mode`` for this environment unless it runs already; return its port."""
    if mode not in MODES:
        raise RuntimeError(f"KINETIK_TEST_PGBOUNCER={mode!r}: use one of {', '.join(MODES)}")
    port = port_for(mode, suffix)
    if _answers(port):
        return port
    if os.environ.get("KINETIK_TEST_WORKER_DB"):
        # A worker process a test started: the test's pooler is gone, and one started
        # here would end with this process, under the test's other connections.
        raise RuntimeError(f"the test run's PgBouncer ({mode} mode, port {port}) is not running")
    binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    if not os.path.exists(binary):
        raise RuntimeError("KINETIK_TEST_PGBOUNCER is set but pgbouncer is not installed: apt-get install pgbouncer")
    directory = Path(tempfile.gettempdir()) / f"kinetik-pgbouncer-{suffix}-{mode}"
    directory.mkdir(exist_ok=True)
    # Session mode lends each client a server connection for as long as it is
    # connected: the pool must hold every connection the suite opens at once.
    pool_size = 60 if mode == "session" else 20
    (directory / "users.txt").write_text('"postgres" ""\n')
    config = directory / "pgbouncer.ini"
    config.write_text(
        _CONFIG.format(
            server_host=SERVER[0], server_port=SERVER[1], port=port, directory=directory, mode=mode, pool_size=pool_size
        )
    )
    command = [binary, "-d", "-q", str(config)]
    if os.geteuid() == 0:  # PgBouncer refuses to run as root
        shutil.chown(directory, "postgres")
        for name in ("users.txt", "pgbouncer.ini"):
            shutil.chown(directory / name, "postgres")
        command[1:1] = ["-u", "postgres"]
    subprocess.run(command, check=True)
    deadline = time.monotonic() + 10
    while not _answers(port):
        if time.monotonic() > deadline:
            log = (directory / "pgbouncer.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"PgBouncer did not start on port {port}:\n{log}")
        time.sleep(0.05)
    atexit.register(_stop, directory / "pgbouncer.pid")
    return port


def _stop(pidfile: Path) -> None:
    """Stop it and wait until it is gone, so that the next run cannot find it still listening
    (SIGINT, PgBouncer's safe shutdown, keeps listening while clients are connected)."""
    try:
        pid = int(pidfile.read_text())
        os.kill(pid, signal.SIGTERM)  # immediate shutdown
    except (OSError, ValueError):
        return
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            return
        time.sleep(0.02)


def admin(port: int, command: str) -> None:
    """Run ``command`` on PgBouncer's admin console (its ``pgbouncer`` database)."""
    import psycopg

    with psycopg.connect(host="127.0.0.1", port=port, dbname="pgbouncer", user="postgres", autocommit=True) as console:
        console.execute(command)


def release_database(port: int, name: str) -> None:
    """Close PgBouncer's server connections to database ``name``, so it can be dropped."""
    try:
        admin(port, f'KILL "{name}"')
    except Exception:  # never connected through the pooler: nothing to close
        return
    admin(port, f'RESUME "{name}"')


def session_params(connection) -> dict:
    """psycopg keywords for a connection that keeps its own session: to the server itself,
    around this run's pooler when there is one (a lock it takes, a pid it reads, stay its own)."""
    from django.conf import settings

    params = connection.get_connection_params()
    if settings.POOLER:
        params.update(host=SERVER[0], port=SERVER[1])
    return params
