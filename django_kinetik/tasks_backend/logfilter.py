"""In a worker, Django's own ``Task id=... state=...`` lines repeat kinetik's: they are left out.

Django's task signal receivers log every start and end of a task at INFO
(the ``django.tasks`` logger; the backport's is ``django_tasks``), and a
kinetik worker logs each job's end in its own words already, so each
django.tasks job would be logged twice. A failure's line (ERROR, with the
exception, for error monitoring) still goes through. Imports nothing of the
Tasks framework: the worker installs it whether or not the project uses it.
"""

from __future__ import annotations

import logging

import django

#: how Django's task signal receivers begin their lines
PREFIX = "Task id="


def framework_logger() -> logging.Logger:
    """The logger of the Tasks framework this Django has."""
    return logging.getLogger("django.tasks" if django.VERSION >= (6, 0) else "django_tasks")


class RepeatedTaskLines(logging.Filter):
    """Drops the framework's routine lines about a task (below WARNING); keeps its errors."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or not str(record.msg).startswith(PREFIX)


def leave_out_repeated_lines() -> None:
    """Install the filter on the framework's logger (once)."""
    logger = framework_logger()
    if not any(isinstance(each, RepeatedTaskLines) for each in logger.filters):
        logger.addFilter(RepeatedTaskLines())
