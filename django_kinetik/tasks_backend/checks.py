"""What ``KinetikTaskBackend.check()`` reports: a missing app, bad ``OPTIONS``, unapplied migrations.

Ids (listed with kinetik's others in ``django_kinetik/checks.py``):
kinetik.E013 the backend is configured but ``django_kinetik`` is not in
INSTALLED_APPS; E014 bad ``OPTIONS``; W002 kinetik's migrations are not all
applied on the jobs database. W002 is a warning, not an error, because
``manage.py migrate`` runs the database checks before it migrates: an error
would stop the very command that fixes it.

Imports neither kinetik's models nor the Tasks framework, so the stand-in
backend of a project without the app (``notinstalled.py``) can use it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from django.core.checks import CheckMessage, Error, Warning
from django.core.exceptions import ImproperlyConfigured

from ..values.options import OPTION_NAMES, TaskOptions, parse_options

APP = "django_kinetik"
#: options that come from the Task itself (queue_name and priority), not from OPTIONS
FROM_TASK = ("tag", "priority")
#: options set per function in KINETIK["TASKS"], not for a whole backend
PER_FUNCTION = ("concurrency", "rate_limit", "limit_by")


def app_missing(alias: str) -> Error:
    return Error(
        f"TASKS[{alias!r}] uses KinetikTaskBackend, but {APP!r} is not in INSTALLED_APPS, "
        "so its tasks cannot be enqueued or run.",
        hint=f"Add {APP!r} to INSTALLED_APPS, then run: python manage.py migrate {APP}",
        obj=f"TASKS[{alias!r}]",
        id="kinetik.E013",
    )


def read_options(alias: str, options: Any) -> tuple[TaskOptions, list[CheckMessage]]:
    """A backend's ``OPTIONS`` as kinetik task options, and what is wrong with them (kinetik.E014).

    With problems, the options are the defaults: the backend still loads, so
    ``manage.py check`` can report them instead of a traceback.
    """
    where = f"TASKS[{alias!r}]['OPTIONS']"
    known = ", ".join(name for name in OPTION_NAMES if name not in (*FROM_TASK, *PER_FUNCTION))

    def problem(message: str, hint: str) -> tuple[TaskOptions, list[CheckMessage]]:
        return TaskOptions(), [Error(message, hint=hint, obj=where, id="kinetik.E014")]

    if not isinstance(options, Mapping):
        return problem(
            f"{where} must be a dict of kinetik task options, not {options!r}.",
            f'Give a dict such as {{"retries": 3, "timeout": "5m"}}; OPTIONS takes {known}.',
        )
    misplaced = [name for name in options if name in FROM_TASK]
    if misplaced:
        return problem(
            f"{where} cannot set {', '.join(misplaced)}: a task's queue_name is its tag, and its priority "
            "comes from the task.",
            "Use @task(queue_name=..., priority=...) or .using(queue_name=..., priority=...), and remove "
            f"{', '.join(misplaced)} from OPTIONS.",
        )
    limits = [name for name in options if name in PER_FUNCTION]
    if limits:
        return problem(
            f"{where} cannot set {', '.join(limits)}: limits are per function, so workers know them before "
            "they import it.",
            'Set them in KINETIK["TASKS"]["<module path of the function>"] instead.',
        )
    try:
        return TaskOptions(**parse_options(options, where=where)), []
    except (TypeError, ValueError) as error:
        return problem(f"{error}.", f"OPTIONS takes {known}.")


def as_error(message: CheckMessage) -> ImproperlyConfigured:
    """A check message as the error raised where the backend is used (an enqueue, a get_result)."""
    return ImproperlyConfigured(f"{message.msg} {message.hint} ({message.id})")


def unapplied_migrations(databases: Collection[str] | None) -> list[CheckMessage]:
    """kinetik.W002 when the jobs database lacks some of kinetik's migrations; only when ``databases`` has it.

    Like Django's own database checks, nothing is asked of a database unless
    the command wants it (``check --database``, ``migrate``, the test runner).
    """
    if not databases:
        return []
    from django.apps import apps
    from django.db import DatabaseError, connections
    from django.db.migrations.loader import MigrationLoader

    from ..conf import get_settings

    if not apps.is_installed(APP):
        return []  # kinetik.E013 says so
    try:
        alias = get_settings().database
    except ImproperlyConfigured:
        return []  # a bad KINETIK setting: kinetik's own checks report it
    if alias not in databases:
        return []
    try:
        loader = MigrationLoader(connections[alias], ignore_no_migrations=True)
    except DatabaseError:
        return []  # an unreachable database: Django's database checks and the command itself say so
    applied = loader.applied_migrations or {}
    missing = sorted(name for app, name in loader.graph.nodes if app == APP and (app, name) not in applied)
    if not missing:
        return []
    return [
        Warning(
            f"The jobs database {alias!r} lacks {len(missing)} of kinetik's migrations ({', '.join(missing)}): "
            "jobs cannot be enqueued or run there until they are applied.",
            hint=f"Run: python manage.py migrate {APP} --database {alias}",
            obj=f"DATABASES[{alias!r}]",
            id="kinetik.W002",
        )
    ]
