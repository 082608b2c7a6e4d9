"""Storage backends: how workers claim and settle jobs."""

from __future__ import annotations

from .base import Backend, Settlement, WorkerInfo


def get_backend() -> Backend:
    """The backend for the configured job database."""
    from ..conf import get_settings
    from .database import DatabaseBackend

    return DatabaseBackend(get_settings().database)


__all__ = ["Backend", "Settlement", "WorkerInfo", "get_backend"]
