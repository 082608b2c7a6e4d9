"""The backend ``settings.TASKS`` gets when ``django_kinetik`` is not in INSTALLED_APPS.

The real backend needs kinetik's models, which Django refuses to load for an
app it does not have (a RuntimeError). This stand-in loads, so tasks can be
defined and ``manage.py check`` reports kinetik.E013 with what to do; using
it raises the same advice.
"""

from __future__ import annotations

from typing import Any

from .checks import app_missing, as_error
from .framework import BaseTaskBackend


class KinetikTaskBackend(BaseTaskBackend):
    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def enqueue(self, task: Any, args: Any, kwargs: Any) -> Any:
        raise as_error(app_missing(self.alias))

    def get_result(self, result_id: str) -> Any:
        raise as_error(app_missing(self.alias))

    def check(self, **kwargs: Any) -> list[Any]:
        return [app_missing(self.alias)]
