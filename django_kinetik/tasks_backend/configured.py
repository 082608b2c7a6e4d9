"""Which ``settings.TASKS`` backends are kinetik's, read without importing the Tasks framework.

A worker asks this on every project, including Django 5.2 projects without
the ``django-tasks`` backport, so it looks at the settings only: the
framework is imported when a kinetik backend is actually configured.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string

BACKEND_PATH = "django_kinetik.tasks_backend.KinetikTaskBackend"
#: Django's default queue name (django.tasks.DEFAULT_TASK_QUEUE_NAME)
DEFAULT_QUEUE = "default"


def _is_kinetik(path: Any) -> bool:
    if path == BACKEND_PATH:
        return True
    if not isinstance(path, str):
        return False
    # Another path may name a subclass of ours; Django imports it anyway.
    try:
        backend = import_string(path)
        from .backend import KinetikTaskBackend
    except Exception:  # an unimportable BACKEND is Django's to report, not ours
        return False
    return isinstance(backend, type) and issubclass(backend, KinetikTaskBackend)


def kinetik_backends() -> dict[str, dict[str, Any]]:
    """``settings.TASKS`` entries whose BACKEND is kinetik's, by alias."""
    tasks = getattr(settings, "TASKS", None) or {}
    if not isinstance(tasks, dict):
        return {}
    return {
        alias: params
        for alias, params in tasks.items()
        if isinstance(params, dict) and _is_kinetik(params.get("BACKEND"))
    }


def enabled() -> bool:
    """Whether this project runs ``django.tasks`` jobs on kinetik workers."""
    return bool(kinetik_backends())


def served_queues() -> list[str]:
    """The queues of every kinetik backend, in settings order: what a worker with no tags serves too."""
    queues: dict[str, None] = {}
    for params in kinetik_backends().values():
        for queue in params.get("QUEUES", [DEFAULT_QUEUE]):
            queues[queue] = None
    return list(queues)
