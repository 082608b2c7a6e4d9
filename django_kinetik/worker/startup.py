"""What a worker makes sure of before it registers: kinetik's tables exist, and its tags make sense.

A worker started before ``manage.py migrate`` (a new project, or a deploy
that starts workers before migrating) would otherwise fail on its first
query with the database's own words (``relation "django_kinetik_worker" does
not exist``), which do not say what to do. It says so plainly instead, and
waits: it checks again every :data:`CHECK_EVERY` seconds, repeats the hint
every :data:`HINT_EVERY` seconds, and starts as soon as the tables are there.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

from django.db import connections
from django.db.migrations.loader import MigrationLoader

from .. import jobs
from ..backends.base import DATABASE_ERRORS
from ..conf import django_tasks_queues
from ..models import Job, Worker
from .threads import DatabaseTrouble

logger = logging.getLogger("django_kinetik.worker")

#: how often a worker waiting for kinetik's tables looks again, in seconds
CHECK_EVERY = 1.0
#: how often it repeats what to do meanwhile (the first time is at once)
HINT_EVERY = 30.0

APP = Job._meta.app_label


def schema_problem(alias: str) -> str | None:
    """What is missing from database ``alias`` for a worker to run, or None.

    Kinetik's tables, or migrations of kinetik that are not applied (the
    tables of a later migration are missing then, or, on MySQL, whose DDL is
    not transactional, ``migrate`` is still at work). Tables made without
    migrations (a test run with ``--nomigrations``: no migration of kinetik is
    known then) are fine.
    """
    connection = connections[alias]
    tables = set(connection.introspection.table_names())
    missing = [model._meta.db_table for model in (Job, Worker) if model._meta.db_table not in tables]
    if missing:
        return f"kinetik's tables ({', '.join(missing)}) are missing from the database {alias!r}"
    loader = MigrationLoader(connection, ignore_no_migrations=True)
    ours = sorted(key for key in loader.graph.nodes if key[0] == APP)
    unapplied = [name for app, name in ours if (app, name) not in loader.applied_migrations]
    if unapplied:
        return f"kinetik's migration(s) {', '.join(unapplied)} are not applied to the database {alias!r}"
    return None


def schema_ready(alias: str, name: str, stopping: threading.Event, trouble: DatabaseTrouble) -> bool:
    """Block until kinetik's tables are in place (True), or until the worker is stopped (False)."""
    waiting_since: float | None = None
    hinted_at = 0.0
    while not stopping.is_set():
        try:
            problem = schema_problem(alias)
        except DATABASE_ERRORS as error:
            trouble.failed(error)
            continue
        trouble.recovered()
        if problem is None:
            if waiting_since is not None:
                logger.warning("Worker %s: kinetik's tables are in place now; starting.", name)
            return True
        now = time.monotonic()
        if waiting_since is None or now - hinted_at >= HINT_EVERY:
            waited = "" if waiting_since is None else f" (waiting for {now - waiting_since:.0f}s)"
            logger.warning(
                "Worker %s cannot start: %s. Run `python manage.py migrate`; the worker starts once they are there%s.",
                name,
                problem,
                waited,
            )
            hinted_at = now
            waiting_since = now if waiting_since is None else waiting_since
        connections[alias].close()
        stopping.wait(CHECK_EVERY)
    return False


def warn_unknown_tags(tags: Sequence[str], name: str) -> None:
    """Warn about served tags no task of this process uses (a typo serves nothing, silently)."""
    try:
        known = list(dict.fromkeys([*jobs.tags(), *django_tasks_queues()]))
    except DATABASE_ERRORS:
        return  # the paused tags cannot be read now; registering waits the database out
    unknown = [tag for tag in tags if tag not in known]
    if unknown:
        logger.warning(
            "Worker %s serves %s, which no task of this process uses: a typo? Known tags: %s.",
            name,
            ", ".join(repr(tag) for tag in unknown),
            ", ".join(known) or "none",
        )
