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
from django.dispatch import Signal
from django.utils import timezone

from . import dependencies
from .conf import get_settings
from .fastpath.queue import announce_ids
from .feed import publishing
from .jobs import batches_of_ids, delete_jobs
from .models import FINISHED_STATUSES, LIVE_STATUSES, RETRYABLE_STATUSES, Job, Status, cancelled, requeued
from .registry import registry
from .signals import emit, job_cancelled

#: a running job is never deleted from under its worker: cancel it first
DELETABLE = (Status.QUEUED, Status.DELAYED, Status.WAITING, *FINISHED_STATUSES)
#: what "run now" moves to the queue: scheduled jobs, and jobs waiting for others (which stop waiting)
RUNNABLE_NOW = (Status.DELAYED, Status.WAITING)


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


def _transition(ids: list[int], allowed: tuple[str, ...], signal: Signal | None = None, **changes: object) -> int:
    """Move the jobs among ``ids`` that are in ``allowed`` statuses; return how many moved.

    One conditional UPDATE (write first, so SQLite never has to upgrade a read
    lock); jobs that changed state meanwhile are simply not moved.
    """
    jobs = Job.objects.using(get_settings().database)
    candidates = list(jobs.filter(pk__in=ids, status__in=allowed).values_list("pk", flat=True))
    if not candidates:
        return 0
    moved = jobs.filter(pk__in=candidates, status__in=allowed).update(**changes)
    if moved and changes["status"] == Status.QUEUED:
        announce_ids(candidates, get_settings().database)
        if changes.get("attempts") == 0:  # retried: what their failure cancelled waits again
            dependencies.parents_retried(jobs.db, candidates)
    if moved and changes["status"] == Status.CANCELLED:
        publishing.cancelled(jobs.filter(pk__in=candidates, status=Status.CANCELLED), jobs.db)
        dependencies.parents_ended(jobs.db, candidates)
    if signal is not None and moved and signal.has_listeners(Job):
        for job in jobs.filter(pk__in=candidates, status=changes["status"]):
            emit(signal, Job, job=job, task=registry.find(job.task))
    return moved


def cancel_all(queryset: QuerySet[Job], batch_size: int = 500) -> BulkResult:
    """Cancel the queued, delayed and running jobs of ``queryset``."""
    return _apply(queryset, lambda ids: _transition(ids, LIVE_STATUSES, job_cancelled, **cancelled()), batch_size)


def retry_all(queryset: QuerySet[Job], batch_size: int = 500) -> BulkResult:
    """Queue the failed, timed-out and cancelled jobs of ``queryset`` again, with fresh attempts."""
    return _apply(queryset, lambda ids: _transition(ids, RETRYABLE_STATUSES, **requeued()), batch_size)


def run_now_all(queryset: QuerySet[Job], batch_size: int = 500) -> BulkResult:
    """Queue the delayed and waiting jobs of ``queryset`` to run now (waiting ones stop waiting)."""
    return _apply(
        queryset,
        lambda ids: _transition(ids, RUNNABLE_NOW, status=Status.QUEUED, run_at=timezone.now()),
        batch_size,
    )


def delete_all(queryset: QuerySet[Job], batch_size: int = 500) -> BulkResult:
    """Delete the jobs of ``queryset`` (with logs and runs), except running ones."""
    using = get_settings().database

    def delete(ids: list[int]) -> int:
        deletable = list(Job.objects.using(using).filter(pk__in=ids, status__in=DELETABLE).values_list("pk", flat=True))
        return delete_jobs(deletable) if deletable else 0

    return _apply(queryset, delete, batch_size)
