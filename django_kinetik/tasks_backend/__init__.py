"""Django's Tasks framework (``django.tasks``) on kinetik workers.

``TASKS = {"default": {"BACKEND": "django_kinetik.tasks_backend.KinetikTaskBackend"}}``
makes every ``@task`` function's ``enqueue()`` create a kinetik job. The
backend class is imported on first use, so that importing this package (as
the worker does, to read ``configured``) never requires the Tasks framework:
Django 6.0+ has it built in; on 5.2 it is the ``django-tasks`` backport.

Modules: ``framework`` (the one framework this Django has), ``backend`` (the
backend class), ``results`` (a job as a TaskResult), ``running`` (a task
function as a kinetik task, and Django's task signals), ``bridge`` (those
signals, sent from kinetik's), ``configured`` (what settings.TASKS asks for),
``logfilter`` (a worker logs each job once, not again in Django's words),
``checks`` (what the backend's ``check()`` reports) and ``notinstalled`` (the
backend of a project that lacks the app: it only says so).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .backend import KinetikTaskBackend

__all__ = ["KinetikTaskBackend"]


def __getattr__(name: str) -> Any:
    if name == "KinetikTaskBackend":
        from django.apps import apps

        if apps.apps_ready and not apps.is_installed("django_kinetik"):
            # kinetik's models cannot load: a stand-in that reports kinetik.E013 instead.
            from .notinstalled import KinetikTaskBackend as NotInstalled

            return NotInstalled
        from .backend import KinetikTaskBackend

        return KinetikTaskBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
