"""The service functions that the records and the task definitions call back into.

``Job.cancel()``, ``Job.retry()``, ``Job.wait()`` and ``Task.create()`` are
methods of the layers below the service layer (``models/``, ``registry.py``;
see docs/architecture.md), and those layers never import it. The app's
``ready()`` binds the service functions here instead, so a model method and
the public function of the same name run one code path.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ImproperlyConfigured

if TYPE_CHECKING:
    from .models import Job


@dataclass(frozen=True)
class Services:
    """What the lower layers may call: each is the public function of the same name."""

    create: Callable[..., Job]
    create_many: Callable[..., list[Job]]
    create_on_commit: Callable[..., None]
    #: cancel one job: False if it had already finished
    cancel: Callable[[Job], bool]
    #: queue one finished job again: False if it is not failed, timed out or cancelled
    retry: Callable[[Job], bool]
    wait: Callable[[Job, Any, float], Any]
    await_result: Callable[[Job, Any, float], Awaitable[Any]]


_bound: Services | None = None


def bind(services: Services) -> None:
    """Called once, by the app's ``ready()``."""
    global _bound
    _bound = services


def bound() -> Services:
    if _bound is None:
        raise ImproperlyConfigured(
            "django_kinetik is not ready: add 'django_kinetik' to INSTALLED_APPS (and call django.setup() "
            "in a standalone script) before creating or managing jobs."
        )
    return _bound
