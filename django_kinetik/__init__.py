"""django_kinetik: a job queue for Django that keeps every job in the database.

``import django_kinetik as kinetik`` gives the whole public API. Names that
need Django's models (``create``, ``Job``...) are loaded on first use, because
Django imports this package before its models are ready.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .exceptions import (
    InvalidTransition,
    JobCancelled,
    JobError,
    JobFailed,
    JobNotFound,
    KinetikError,
    RateLimited,
    Snooze,
    TaskDefinitionError,
    UnknownTask,
    WaitTimeout,
)
from .middleware import use
from .registry import Task, define, registry, task
from .values.durations import BareNumberWarning

if TYPE_CHECKING:
    from .feed.event import Event
    from .feed.stream import EventStream, events
    from .jobs import (
        cancel,
        clean,
        create,
        create_many,
        create_on_commit,
        fetch,
        get_job,
        is_paused,
        pause,
        resume,
        retry,
        stats,
        tags,
    )
    from .models import Job, JobLog, JobRun, Status

_LAZY = {
    **{
        name: "jobs"
        for name in (
            "cancel",
            "clean",
            "create",
            "create_many",
            "create_on_commit",
            "fetch",
            "get_job",
            "is_paused",
            "pause",
            "resume",
            "retry",
            "stats",
            "tags",
        )
    },
    **{name: "models" for name in ("Job", "JobLog", "JobRun", "Status")},
    "Event": "feed.event",
    "EventStream": "feed.stream",
    "events": "feed.stream",
}

__all__ = [
    "BareNumberWarning",
    "Event",
    "EventStream",
    "InvalidTransition",
    "Job",
    "JobCancelled",
    "JobError",
    "JobFailed",
    "JobLog",
    "JobNotFound",
    "JobRun",
    "KinetikError",
    "RateLimited",
    "Snooze",
    "Status",
    "Task",
    "TaskDefinitionError",
    "UnknownTask",
    "WaitTimeout",
    "cancel",
    "clean",
    "create",
    "create_many",
    "create_on_commit",
    "define",
    "events",
    "fetch",
    "get_job",
    "is_paused",
    "pause",
    "registry",
    "resume",
    "retry",
    "stats",
    "tags",
    "task",
    "use",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'django_kinetik' has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
