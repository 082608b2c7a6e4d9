"""In a worker, each django.tasks job is logged once at every stage, not in kinetik's words and Django's both.

Django's task signal receivers log every start and end of a task (the
``django.tasks`` logger; the backport's is ``django_tasks``), and a kinetik
worker logs each job's end in its own words already. The worker keeps one:

- routine lines (started, completed, retried): kinetik's, with what Django's
  lack (the attempt, when a retry runs); Django's ``Task id=... state=...``
  INFO lines about kinetik's jobs are left out;
- a failure: Django's ERROR, which carries the traceback and is the record
  error monitoring and the reference backends' users expect; kinetik's own
  line about it is left out, unless the project's logging would show
  Django's nowhere (its receiver disconnected, its logger silenced).

Only records about kinetik's own sends are touched (:func:`kinetik_sending`
marks them), so another backend's lines in the same process stay. Imports
nothing of the Tasks framework: the worker installs it whether or not the
project uses it. Django's receivers stay connected.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator

import django

_sending = threading.local()


@contextlib.contextmanager
def kinetik_sending() -> Iterator[None]:
    """Mark what Django's receivers log, in this thread, as being about a kinetik job."""
    previous = getattr(_sending, "active", False)
    _sending.active = True
    try:
        yield
    finally:
        _sending.active = previous


def framework_logger() -> logging.Logger:
    """The logger of the Tasks framework this Django has."""
    return logging.getLogger("django.tasks" if django.VERSION >= (6, 0) else "django_tasks")


class RepeatedTaskLines(logging.Filter):
    """On the framework's logger: drops its routine lines about kinetik's jobs; keeps its errors."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or not getattr(_sending, "active", False)


class RepeatedFailureLines(logging.Filter):
    """On kinetik's job logger: drops its line about a django.tasks job's failure when Django's ERROR will say it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or not getattr(record, "kinetik_task_backend", ""):
            return True
        return not django_logs_failures()


def django_logs_failures() -> bool:
    """Whether Django's ``task_finished`` log receiver is connected and some handler would show its ERROR."""
    from django.utils.module_loading import import_string

    name = "django.tasks.signals" if django.VERSION >= (6, 0) else "django_tasks.signals"
    try:
        signal, receiver = import_string(f"{name}.task_finished"), import_string(f"{name}.log_task_finished")
    except ImportError:
        return False
    if not any(key[0] == id(receiver) for key, *_ in signal.receivers):
        return False
    logger = framework_logger()
    if not logger.isEnabledFor(logging.ERROR):
        return False
    probe = logger.makeRecord(logger.name, logging.ERROR, __file__, 0, "Task id=", (), None)
    if not logger.filter(probe):
        return False
    current: logging.Logger | None = logger
    found = False
    while current is not None:
        for handler in current.handlers:
            found = True
            if logging.ERROR >= handler.level and handler.filter(probe):
                return True
        current = current.parent if current.propagate else None
    return not found and logging.lastResort is not None  # Python's last resort prints it to stderr


def leave_out_repeated_lines() -> None:
    """Install the filters (once): on the framework's logger, and on kinetik's job logger."""
    for logger, kind in (
        (framework_logger(), RepeatedTaskLines),
        (logging.getLogger("django_kinetik.jobs"), RepeatedFailureLines),
    ):
        if not any(isinstance(each, kind) for each in logger.filters):
            logger.addFilter(kind())
