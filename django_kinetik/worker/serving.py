"""What a worker serves: its tags, the tasks it may run, and their limits."""

from __future__ import annotations

import os
from collections.abc import Sequence

from django.core.exceptions import ImproperlyConfigured

from ..backends.base import Runnable
from ..conf import django_tasks_enabled, django_tasks_queues, get_settings
from ..registry import registry
from ..values.limits import Limit
from ..values.options import TaskOptions, parse_tag


def default_tags() -> list[str]:
    """A worker given no tags serves its tasks' tags, then the queues of kinetik's django.tasks backends."""
    return list(dict.fromkeys([*registry.tags(), *django_tasks_queues()]))


def tags_from_environment() -> list[str]:
    """Tags from ``KINETIK_QUEUE="a,b"`` (Kinetik's environment middleware), checked as the command line's are.

    A tag no job can have would leave the worker idle for ever, without a word.
    """
    tags = [tag.strip() for tag in os.environ.get("KINETIK_QUEUE", "").split(",") if tag.strip()]
    for tag in tags:
        try:
            parse_tag(tag)
        except ValueError as error:
            raise ImproperlyConfigured(f"KINETIK_QUEUE: {error}; separate tags with commas") from None
    return tags


def task_limits() -> dict[str, Limit]:
    """The concurrency and rate limits of the tasks this worker may run, by task name.

    Registered tasks, and ``django.tasks`` functions given limits in
    ``KINETIK["TASKS"]`` (a worker may not have imported them yet).
    """
    limits = {task.name: task.effective_options().limit for task in registry}
    for name, overrides in get_settings().tasks.items():
        if name not in limits:
            limits[name] = TaskOptions().merged(overrides, where=f'KINETIK["TASKS"][{name!r}]').limit
    return {name: limit for name, limit in limits.items() if limit}


def runnable(limits: dict[str, Limit]) -> Runnable:
    """The jobs the plain claim may take here: registered tasks without limits, and django.tasks jobs."""
    return Runnable(
        tuple(name for name in registry.names() if name not in limits),
        django_tasks=django_tasks_enabled(),
        excluded=frozenset(limits),
    )


def check(runnable: Runnable, limits: dict[str, Limit], tags: Sequence[str]) -> None:
    """Refuse to start a worker that could never run anything, saying what to do."""
    if not runnable and not limits:
        raise ImproperlyConfigured(
            "No kinetik tasks are registered, so this worker has nothing to run. "
            "Define tasks with @kinetik.task in an installed app's tasks.py, or configure "
            "django_kinetik.tasks_backend.KinetikTaskBackend in TASKS to run django.tasks functions."
        )
    if not tags:
        raise ImproperlyConfigured("The worker has no tags to serve.")


def check_startable(tags: Sequence[str] | None) -> None:
    """:func:`check` for a worker given ``tags``: a supervisor asks before it starts (and restarts) children."""
    limits = task_limits()
    check(runnable(limits), limits, list(tags or tags_from_environment() or default_tags()))
