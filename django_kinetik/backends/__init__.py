"""Storage: the only code that speaks SQL.

``base.py`` is the contract (and what each database can do, as ``supports_*``
flags); ``orm.py`` the portable implementation; ``postgresql.py``,
``sqlite.py`` and ``mysql.py`` each database's own hot path; ``statements.py``
the named SQL; ``limited.py`` the claims of tasks with concurrency or rate limits.
"""

from __future__ import annotations

import threading

from django.db import connections

from .base import Backend, Settlement, WorkerInfo, Written

_backends: dict[tuple[str, str], Backend] = {}
_lock = threading.Lock()


def get_backend(alias: str | None = None) -> Backend:
    """The backend for database ``alias`` (default: ``KINETIK["DATABASE"]``), one per alias and vendor."""
    if alias is None:
        from ..conf import get_settings

        alias = get_settings().database
    vendor = connections[alias].vendor
    backend = _backends.get((alias, vendor))
    if backend is None:
        with _lock:
            backend = _backends.get((alias, vendor))
            if backend is None:
                backend = _backends[(alias, vendor)] = _backend_class(vendor)(alias)
    return backend


def _backend_class(vendor: str) -> type[Backend]:
    if vendor == "postgresql":
        from .postgresql import PostgresBackend

        return PostgresBackend
    if vendor == "sqlite":
        from .sqlite import SQLiteBackend

        return SQLiteBackend
    if vendor == "mysql":
        from .mysql import MySQLBackend

        return MySQLBackend
    from .orm import OrmBackend

    return OrmBackend


__all__ = ["Backend", "Settlement", "WorkerInfo", "Written", "get_backend"]
