"""Whether an attempt failed because the database went away under it: an outage, not the job's fault.

A job's query that dies with the connection (a restart, a failover, a cut)
says nothing about the job. When its error is a connection-level one *and*
the worker itself then finds the database unreachable, or restarted since the
attempt began, the attempt is recorded as ``interrupted`` and the job put back
without using an attempt (``outcomes.interrupted``), as for a shutdown. An
error in the task's own SQL (a syntax error, a constraint, a division by
zero) is not connection-level, and a connection error while the database
stayed up (the code closed or killed its own connection) is the code's: both
fail the attempt as usual.
"""

from __future__ import annotations

import weakref
from datetime import datetime
from typing import Any

from django.db import InterfaceError, OperationalError, connections
from django.utils import timezone

from .backends import get_backend
from .backends.base import DATABASE_ERRORS

#: SQLSTATEs of a connection that went away: class 08 (connection exception),
#: the server shutting down (57P01 admin, 57P02 crash) or not accepting yet (57P03)
_SHUTDOWN_STATES = frozenset({"57P01", "57P02", "57P03"})
#: how drivers word it when they give no SQLSTATE (psycopg, MySQLdb/PyMySQL)
_PHRASES = (
    "server closed the connection",
    "connection is closed",
    "connection already closed",
    "terminating connection",
    "could not connect",
    "connection refused",
    "consuming input failed",
    "the database system is",
    "lost connection to mysql server",
    "mysql server has gone away",
    "can't connect to mysql server",
)


#: when each of this process's connections to a database was opened: a job
#: thread keeps its connection between jobs, so one opened before a restart
#: fails on its next job's first query, after the database is back
_opened: weakref.WeakKeyDictionary[Any, datetime] = weakref.WeakKeyDictionary()


def note_connection(sender: Any, connection: Any, **kwargs: Any) -> None:
    """``connection_created`` receiver: remember when ``connection`` was opened."""
    _opened[connection] = timezone.now()


def connection_lost(error: BaseException) -> bool:
    """Whether ``error`` (or what it was raised from) is the database connection going away."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen and len(seen) < 10:
        seen.add(id(current))
        if _is_connection_error(current):
            return True
        current = current.__cause__ or current.__context__
    return False


def _is_connection_error(error: BaseException) -> bool:
    state = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
    if isinstance(state, str) and state:
        return state.startswith("08") or state in _SHUTDOWN_STATES
    if not isinstance(error, (OperationalError, InterfaceError)) and type(error).__name__ not in (
        "OperationalError",
        "InterfaceError",
    ):
        return False
    message = str(error).lower()
    return any(phrase in message for phrase in _PHRASES)


def database_was_away(alias: str, since: datetime | None) -> bool:
    """Whether the database cannot be reached now, or restarted after ``since`` or after this
    thread's connection to it was opened (whichever came first)."""
    connection = connections[alias]
    opened = _opened.get(connection)
    if opened is not None and (since is None or opened < since):
        since = opened
    if connection.connection is not None:
        try:
            usable = connection.is_usable()
        except DATABASE_ERRORS:
            usable = False
        if not usable:
            connection.close()  # reconnect below
    backend = get_backend(alias)
    try:
        backend.ping()
        return since is not None and backend.restarted_since(since)
    except DATABASE_ERRORS:
        connection.close()
        return True


def caused(error: BaseException, alias: str, since: datetime | None) -> bool:
    """Whether an attempt that began at ``since`` and raised ``error`` was ended by a database outage."""
    return connection_lost(error) and database_was_away(alias, since)
