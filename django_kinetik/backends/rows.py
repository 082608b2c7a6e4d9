"""What the backends' statements write and read back, shared by every vendor.

The fields an attempt's end sets, mirroring a write on the in-memory row, the
claim order, SQLite's patience with its write lock, and the guarded
``UPDATE ... RETURNING *`` that PostgreSQL and SQLite use for transitions.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar, cast

from django.db import OperationalError, connections
from django.db.models import Field

from ..models import Job, Status
from . import statements
from .base import Settlement

if TYPE_CHECKING:
    from .orm import OrmBackend

T = TypeVar("T")

#: the statuses a job is retried in
REQUEUED = (Status.QUEUED, Status.DELAYED)


def settled_changes(settlement: Settlement) -> dict[str, Any]:
    """The job fields an attempt's end sets."""
    changes: dict[str, Any] = {
        "status": settlement.status,
        "lease_expires_at": None,
        "error": settlement.error,
        "error_code": settlement.error_code,
    }
    if settlement.status in REQUEUED:
        changes.update(run_at=settlement.run_at or settlement.finished_at, finished_at=None)
    else:
        changes.update(result=settlement.result, finished_at=settlement.finished_at)
    return changes


def apply(job: Job, changes: dict[str, Any]) -> None:
    """Mirror a write on the in-memory row (expressions such as F() are left out)."""
    for name, value in changes.items():
        if not hasattr(value, "resolve_expression"):
            setattr(job, name, value)


def claim_order(job: Job) -> tuple[int, datetime, int]:
    return (-job.priority, job.run_at, job.pk)


def locked_retry(operation: Callable[[], T], *, attempts: int = 50) -> T:
    """Run ``operation``, waiting out SQLite's "database is locked" a few times.

    SQLite's busy timeout already waits for the writer lock; this covers the
    rare case where a busy handler is not invoked (a snapshot that went stale
    in WAL mode) so a worker never crashes on lock contention.
    """
    pause = 0.01
    for _ in range(attempts):
        try:
            return operation()
        except OperationalError as error:
            if "locked" not in str(error) and "busy" not in str(error):
                raise
            time.sleep(pause)
            pause = min(pause * 2, 0.5)
    return operation()


def update_returning(
    backend: OrmBackend, ids: Sequence[int], statuses: Sequence[str], changes: dict[str, Any]
) -> list[Job]:
    """A guarded transition in one ``UPDATE ... RETURNING *`` (PostgreSQL and SQLite)."""
    if not ids:
        return []
    connection = connections[backend.alias]
    fields = [cast(Field, Job._meta.get_field(name)) for name in changes]  # type: ignore[type-arg]
    values = [field.get_db_prep_save(value, connection) for field, value in zip(fields, changes.values(), strict=True)]
    statement = statements.update_returning([str(field.column) for field in fields], len(ids), len(statuses))
    params = [*values, *ids, *statuses]
    return backend.retrying_locks(lambda: list(backend.jobs().raw(statement, params)))


#: what every claimed row holds; the claim returns the rest
_CLAIMED: dict[str, Any] = {
    "status": Status.ACTIVE,
    "result": None,
    "error": "",
    "error_code": "",
    "finished_at": None,
    "progress_current": None,
    "progress_total": None,
    "progress_data": None,
}


def claimed_job(
    alias: str,
    row: Sequence[Any],
    *,
    worker_id: int | None,
    now: datetime,
    expires: datetime,
    json: Callable[[Any], Any],
    moment: Callable[[Any], datetime],
) -> Job:
    """A claimed Job from the columns a claim returns (``statements``' RETURNING order), without Django's
    row building: the claim knows the rest (status, worker, lease, start). ``json`` and ``moment`` read
    the vendor's JSON and time values."""
    (job_id, task, task_backend, tag, priority, data, options) = row[:7]
    (attempts, ghosts, snoozes, unique_key, limit_key, run_at, created_at, run_after) = row[7:]
    return Job.loaded(
        alias,
        {
            **_CLAIMED,
            "id": job_id,
            "task": task,
            "task_backend": task_backend,
            "tag": tag,
            "priority": priority,
            "data": json(data),
            "options": json(options),
            "attempts": attempts,
            "ghosts": ghosts,
            "snoozes": snoozes,
            "unique_key": unique_key,
            "limit_key": limit_key,
            "run_at": moment(run_at),
            "created_at": moment(created_at),
            "run_after": None if run_after is None else moment(run_after),
            "started_at": now,
            "worker_id": worker_id,
            "lease_expires_at": expires,
        },
    )
