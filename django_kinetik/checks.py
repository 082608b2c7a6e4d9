"""System checks: ``manage.py check`` reports a bad ``KINETIK`` setting by id.

Ids are stable: kinetik.E001 not a dict, E002 unknown key, E003 bad duration,
E004 wrong type, E005 unknown database alias, E006 bad task option, E007
middleware that cannot be imported, E008 SQLite too old, E009 KINETIK["REDIS"]
neither a URL nor a django-redis cache, E010 an API token too short to be
safe, E011 MAX_DATA_BYTES below 1 KiB, E012 a retry_on path that names no exception class;
E013 a django.tasks backend of kinetik's in a project without the
``django_kinetik`` app, E014 bad ``TASKS[...]["OPTIONS"]`` (both reported by
``KinetikTaskBackend.check()``, see ``tasks_backend/checks.py``);
E016 a LISTEN_DATABASE that is neither an alias nor connection keys, E017 a
LISTEN_DATABASE alias that goes through a transaction pooler itself, E018 a
Redis Cluster (values/redis_location.py says why not), E019 jobs
on a database of their own that the routers do not send kinetik's models to;
W001 settings for a task that is not defined, W002 kinetik's migrations not
all applied on the jobs database (a database check, with the backend), W004
the jobs database behind a transaction pooler with no LISTEN_DATABASE (what
is lost), or a LISTEN_DATABASE that nothing uses, W005 jobs on a database of
their own: create() in atomic() on default is not part of that transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.db import DEFAULT_DB_ALIAS, router
from django.utils.module_loading import import_string

from .conf import KinetikSettings, django_tasks_enabled, read_settings
from .registry import registry, retry_on_problem
from .tasks_backend.checks import unapplied_migrations


def _is_django_task(name: str) -> bool:
    """Whether ``name`` is the module path of a django.tasks function (whose module may not be imported yet).

    Told by its shape (a Task knows its own module path and can be enqueued),
    so the checks need not import the Tasks framework.
    """
    if "." not in name or not django_tasks_enabled():
        return False
    try:
        task = import_string(name)
    except Exception:  # not importable: not one
        return False
    return getattr(task, "module_path", None) == name and callable(getattr(task, "enqueue", None))


@register(Tags.compatibility, "kinetik")
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    parsed, problems = read_settings(getattr(settings, "KINETIK", None))
    messages: list[CheckMessage] = [
        Error(problem.msg, hint=problem.hint or None, id=problem.id) for problem in problems
    ]
    for path in parsed.middleware:
        try:
            import_string(path)
        except ImportError as error:
            messages.append(
                Error(
                    f'KINETIK["MIDDLEWARE"] entry {path!r} cannot be imported: {error}.',
                    hint="Give the dotted path of a middleware class.",
                    id="kinetik.E007",
                )
            )
    for name in parsed.tasks:
        if name not in registry and not _is_django_task(name):
            messages.append(
                Warning(
                    f'KINETIK["TASKS"] has options for {name!r}, but no task has that name.',
                    hint=f"Defined tasks: {', '.join(registry.names()) or 'none'}.",
                    id="kinetik.W001",
                )
            )
    messages += _retry_on_messages(parsed.tasks)
    messages += _pooler_messages(parsed)
    messages += _job_database_messages(parsed)
    engine = str(settings.DATABASES.get(parsed.database, {}).get("ENGINE", ""))
    if engine.endswith("sqlite3") and _sqlite_version() < (3, 35):
        messages.append(
            Error(
                f"The job database is SQLite {'.'.join(map(str, _sqlite_version()))}; kinetik needs 3.35 or later "
                f"(for UPDATE ... RETURNING).",
                hint="Use a Python built with a newer SQLite, or PostgreSQL.",
                id="kinetik.E008",
            )
        )
    return messages


# Only Django's database tag: Django runs it only when databases are asked for
# (``check --database``, ``migrate``). Not "kinetik" too: since Django 6.1
# ``run_checks(tags=[...])`` hands every check all databases, so a tagged run of
# kinetik's static checks would query the database.
@register(Tags.database)
def check_migrations(app_configs: Any = None, databases: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """kinetik.W002 for a project with a kinetik django.tasks backend (the framework's check passes no databases)."""
    return unapplied_migrations(databases) if django_tasks_enabled() else []


def _retry_on_messages(overrides: Mapping[str, Any]) -> list[CheckMessage]:
    """kinetik.E012: a retry_on path that names no exception class (it would match nothing, silently).

    Definition refuses most (see registry.retry_on_problem); these are the
    ones it had to leave: classes further down a module still being imported,
    and paths given in KINETIK["TASKS"] or a django.tasks backend's OPTIONS.
    """
    messages: list[CheckMessage] = []
    for task in registry:
        try:
            retry_on = task.options.merged(overrides.get(task.name), where=task.name).retry_on
        except (TypeError, ValueError):
            continue  # a bad KINETIK["TASKS"] entry: reported above, as kinetik.E006
        for path in retry_on:
            problem = retry_on_problem(path) if isinstance(path, str) else None
            if problem:
                messages.append(
                    Error(
                        f"Task {task.name!r}: retry_on entry {path!r} {problem}; it would match no error.",
                        hint="Give the dotted path of an exception class, such as 'requests.Timeout', or the class.",
                        obj=task.name,
                        id="kinetik.E012",
                    )
                )
    return messages


def _pooler_messages(parsed: KinetikSettings) -> list[CheckMessage]:
    """kinetik.W004 and E017: a jobs database behind a transaction pooler, and LISTEN_DATABASE (backends/pooling.py)."""
    jobs = settings.DATABASES.get(parsed.database, {})
    if not str(jobs.get("ENGINE", "")).endswith(("postgresql", "postgis")):
        if parsed.listen_database:
            return [
                Warning(
                    'KINETIK["LISTEN_DATABASE"] is set, but the jobs database is not PostgreSQL: it is not used.',
                    hint='Remove KINETIK["LISTEN_DATABASE"].',
                    id="kinetik.W004",
                )
            ]
        return []
    where = parsed.listen_database
    if isinstance(where, str) and where and settings.DATABASES[where].get("DISABLE_SERVER_SIDE_CURSORS"):
        return [
            Error(
                f'KINETIK["LISTEN_DATABASE"] names {where!r}, which has DISABLE_SERVER_SIDE_CURSORS: '
                f"a transaction pooler cannot carry LISTEN either.",
                hint="Name an alias that reaches PostgreSQL directly, or through a session-mode pooler.",
                id="kinetik.E017",
            )
        ]
    if jobs.get("DISABLE_SERVER_SIDE_CURSORS") and not where:
        return [
            Warning(
                f"The jobs database {parsed.database!r} goes through a transaction pooler "
                f"(DISABLE_SERVER_SIDE_CURSORS), which cannot carry LISTEN: idle workers look for new jobs "
                f"every INTERVAL ({parsed.interval:g}s) instead of being woken, and job.wait(), "
                f"the live feed and the admin's live view re-read the database instead of being told.",
                hint='Set KINETIK["LISTEN_DATABASE"] to an alias, or a dict such as {"HOST": ..., "PORT": 5432}, '
                "that reaches the same database directly; see docs/topology.md.",
                id="kinetik.W004",
            )
        ]
    return []


def _job_database_messages(parsed: KinetikSettings) -> list[CheckMessage]:
    """kinetik.E019 and W005: jobs on a database of their own (routers.py, and what atomic() on default means)."""
    if parsed.database == DEFAULT_DB_ALIAS or parsed.database not in settings.DATABASES:
        return []
    job = apps.get_model("django_kinetik", "Job")
    routed = {router.db_for_read(job), router.db_for_write(job)}
    messages: list[CheckMessage] = []
    if routed != {parsed.database} or not router.allow_migrate(parsed.database, "django_kinetik", model_name="job"):
        messages.append(
            Error(
                f'KINETIK["DATABASE"] is {parsed.database!r}, but DATABASE_ROUTERS send kinetik\'s models to '
                f"{', '.join(sorted(map(repr, routed)))}: the admin and migrate would look for the jobs there.",
                hint='Add "django_kinetik.routers.KinetikRouter" to DATABASE_ROUTERS, before any router that '
                "claims every model.",
                id="kinetik.E019",
            )
        )
    messages.append(
        Warning(
            f"Jobs live on {parsed.database!r}, not {DEFAULT_DB_ALIAS!r}: kinetik.create() inside "
            f"transaction.atomic() on {DEFAULT_DB_ALIAS!r} is not part of that transaction (the job stays if "
            f"it rolls back, and a worker may start it before the rest commits).",
            hint=f'Create such jobs with kinetik.create_on_commit(..., using="{DEFAULT_DB_ALIAS}") (or '
            "task.create_on_commit(...)), which creates them when that transaction commits; see docs/topology.md. "
            'Then silence this with SILENCED_SYSTEM_CHECKS = ["kinetik.W005"].',
            id="kinetik.W005",
        )
    )
    return messages


def _sqlite_version() -> tuple[int, ...]:
    import sqlite3  # only for a project on SQLite

    return tuple(sqlite3.sqlite_version_info)
