"""The one Tasks framework this Django has: ``django.tasks`` (6.0+) or the ``django-tasks`` backport (5.2).

The two define the same names as different classes and different signals: a
receiver connected to ``django.tasks.signals.task_finished`` never hears the
backport's signal, and a backport ``TaskResult`` is not a Django one (the
confusion django-tasks-db #25 and #27 report). So the backend takes every class
and signal from the framework that matches the running Django, and only from it.
"""

from __future__ import annotations

import django
from django.core.exceptions import ImproperlyConfigured

if django.VERSION >= (6, 0):
    from django.tasks import TaskContext, TaskResult, TaskResultStatus, task_backends
    from django.tasks.backends.base import BaseTaskBackend
    from django.tasks.base import TASK_REFRESH_ATTRS, Task, TaskError
    from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist
    from django.tasks.signals import task_enqueued, task_finished, task_started
    from django.utils.json import normalize_json

    NAME = "django.tasks"
else:  # pragma: no cover - exercised by the Django 5.2 test runs
    try:
        from django_tasks import (  # type: ignore[assignment]
            TaskContext,
            TaskResult,
            TaskResultStatus,
            task_backends,
        )
    except ImportError as error:
        raise ImproperlyConfigured(
            "Django's Tasks framework is part of Django from 6.0; on Django "
            f"{django.get_version()} install its backport: pip install 'django-kinetik[tasks]' "
            "(the django-tasks package)."
        ) from error
    # The backport registers its system check (which calls each backend's check()) only in its
    # AppConfig; importing it here runs it for projects that do not list "django_tasks" in INSTALLED_APPS.
    import django_tasks.checks  # noqa: F401
    from django_tasks.backends.base import BaseTaskBackend  # type: ignore[assignment]
    from django_tasks.base import TASK_REFRESH_ATTRS, Task, TaskError  # type: ignore[no-redef,assignment]
    from django_tasks.exceptions import (  # type: ignore[no-redef,assignment]
        InvalidTaskError as InvalidTask,
    )
    from django_tasks.exceptions import TaskResultDoesNotExist  # type: ignore[no-redef,assignment]
    from django_tasks.signals import task_enqueued, task_finished, task_started  # type: ignore[no-redef]
    from django_tasks.utils import normalize_json  # type: ignore[no-redef]

    NAME = "django_tasks"

__all__ = [
    "NAME",
    "TASK_REFRESH_ATTRS",
    "BaseTaskBackend",
    "InvalidTask",
    "Task",
    "TaskContext",
    "TaskError",
    "TaskResult",
    "TaskResultDoesNotExist",
    "TaskResultStatus",
    "normalize_json",
    "task_backends",
    "task_enqueued",
    "task_finished",
    "task_started",
]
