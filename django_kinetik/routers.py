"""``KinetikRouter``: kinetik's tables on ``KINETIK["DATABASE"]``, for Django's own code too.

kinetik's code names its database itself (``.using(...)``, ``atomic(using=...)``),
so the worker, the API and ``create()`` need no router. Django's code does
not: the admin, ``dumpdata``, ``migrate`` and a user's own ``Job.objects``
ask the routers. With jobs on a database of their own, add this router::

    DATABASE_ROUTERS = ["django_kinetik.routers.KinetikRouter"]

It sends kinetik's models there, lets kinetik's migrations run only there,
and says nothing about any other app's models. ``manage.py check`` reports a
project whose routers send kinetik's models elsewhere (kinetik.E019).
"""

from __future__ import annotations

from typing import Any

from .conf import get_settings

APP_LABEL = "django_kinetik"


class KinetikRouter:
    def db_for_read(self, model: type[Any], **hints: Any) -> str | None:
        return get_settings().database if model._meta.app_label == APP_LABEL else None

    db_for_write = db_for_read

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool | None:
        if obj1._meta.app_label == APP_LABEL and obj2._meta.app_label == APP_LABEL:
            return True
        return None

    def allow_migrate(self, db: str, app_label: str, model_name: str | None = None, **hints: Any) -> bool | None:
        if app_label == APP_LABEL:
            return db == get_settings().database
        return None
