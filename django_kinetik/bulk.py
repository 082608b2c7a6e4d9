"""Cancel, retry, run now or delete every job of a queryset, in batches.

For the admin's "apply to every matching job" and for scripts: each batch is
its own short transaction (a million-row selection never holds one giant lock),
every change is a conditional UPDATE so jobs in a state where the operation
makes no sense are skipped (and counted), and the usual signals are sent for
the jobs that changed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.db.models import QuerySet

from . import lifecycle
from .conf import get_settings
from .jobs import batches_of_ids, delete_jobs
from .models import FINISHED_STATUSES, RUNNABLE_NOW, Job, Status

#: a running job is never deleted from under its worker: cancel it first
DELETABLE = (Status.QUEUED, Status.DELAYED, Status.WAITING, *FINISHED_STATUSES)

__all__ = ["DELETABLE", "RUNNABLE_NOW", "BulkResult", "cancel_all", "delete_all", "retry_all", "run_now_all"]


@dataclass(frozen=True)
class BulkResult:
    changed: int
    skipped: int


def _apply(queryset: QuerySet[Job], change: Callable[[list[int]], int], batch_size: int) -> BulkResult:
    seen = changed = 0
    for ids in batches_of_ids(queryset, batch_size):
        seen += len(ids)
        changed += change(ids)
    return BulkResult(changed, seen - changed)


def cancel_all(queryset: QuerySet[Job], batch_size: int = 500) -> BulkResult:
    """Cancel the queued, delayed and running jobs of ``queryset``."""
    using = get_settings().database
    return _apply(queryset, lambda ids: len(lifecycle.cancel(ids, using)), batch_size)


def retry_all(queryset: QuerySet[Job], batch_size: int = 500) -> BulkResult:
    """Queue the failed, timed-out and cancelled jobs of ``queryset`` again, with fresh attempts."""
    using = get_settings().database
    return _apply(queryset, lambda ids: len(lifecycle.retry(ids, using)), batch_size)


def run_now_all(queryset: QuerySet[Job], batch_size: int = 500) -> BulkResult:
    """Queue the delayed and waiting jobs of ``queryset`` to run now (waiting ones stop waiting)."""
    using = get_settings().database
    return _apply(queryset, lambda ids: len(lifecycle.run_now(ids, using)), batch_size)


def delete_all(queryset: QuerySet[Job], batch_size: int = 500) -> BulkResult:
    """Delete the jobs of ``queryset`` (with logs and runs), except running ones."""
    using = get_settings().database

    def delete(ids: list[int]) -> int:
        deletable = list(Job.objects.using(using).in_states(DELETABLE, ids).values_list("pk", flat=True))
        return delete_jobs(deletable) if deletable else 0

    return _apply(queryset, delete, batch_size)
