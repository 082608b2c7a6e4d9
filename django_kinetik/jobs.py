"""Creating and managing jobs: the functions ``import django_kinetik as kinetik`` exposes.

Jobs are rows in the configured database, written with the caller's
connection: a job created inside ``transaction.atomic()`` exists only if that
transaction commits, and ``job_created`` is sent only then. Creating is in
:mod:`.creation`; every change of state goes through :mod:`.lifecycle`, so
``kinetik.cancel(job)`` and ``job.cancel()`` are one code path.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from . import lifecycle
from .backends import get_backend
from .conf import get_settings
from .creation import JobRef, create, create_many, create_on_commit
from .exceptions import InvalidTransition, JobNotFound
from .models import FINISHED_STATUSES, LIVE_STATUSES, MAX_JOB_ID, RETRYABLE_STATUSES, Hold, Job, Status, TagState
from .registry import registry
from .values.durations import parse_duration
from .values.options import parse_tag

__all__ = [
    "cancel",
    "clean",
    "create",
    "create_many",
    "create_on_commit",
    "fetch",
    "get_job",
    "is_paused",
    "pause",
    "resume",
    "retry",
    "stats",
    "tags",
]


def _using() -> str:
    return get_settings().database


def get_job(job: JobRef) -> Job:
    """The job row for a job or a job id."""
    if isinstance(job, Job):
        return job
    # Out of range, no row has it, and the database would refuse to look (OverflowError, DataError).
    try:
        pk = int(job)
        if not 1 <= pk <= MAX_JOB_ID:
            raise Job.DoesNotExist
        return Job.objects.using(_using()).get(pk=pk)
    except (Job.DoesNotExist, ValueError, TypeError):
        raise JobNotFound(f"There is no job with id {job!r}.") from None


def cancel(job: JobRef) -> Job:
    """Cancel a queued, delayed or running job; raise if it had already finished.

    A running job is marked cancelled at once; its code is not interrupted and
    whatever it returns is discarded. The same as ``job.cancel()``, which
    returns False instead of raising.
    """
    row = get_job(job)
    if not cancel_job(row):
        raise InvalidTransition(row, "cancel", LIVE_STATUSES)
    return row


def retry(job: JobRef) -> Job:
    """Queue a failed, timed-out or cancelled job again, with a fresh set of attempts.

    The same as ``job.retry()``, which returns False instead of raising.
    """
    row = get_job(job)
    if not retry_job(row):
        raise InvalidTransition(row, "retry", RETRYABLE_STATUSES)
    return row


def cancel_job(job: Job) -> bool:
    """``job.cancel()``: cancel it if it is live; update ``job`` to how it is now."""
    return _changed(job, lifecycle.cancel([job.pk], job._state.db or _using()))


def retry_job(job: Job) -> bool:
    """``job.retry()``: queue it again if it failed, timed out or was cancelled; update ``job``."""
    return _changed(job, lifecycle.retry([job.pk], job._state.db or _using()))


def _changed(job: Job, changed: list[Job]) -> bool:
    if changed:
        job.__dict__.update({field.attname: getattr(changed[0], field.attname) for field in Job._meta.concrete_fields})
    else:
        job.refresh_from_db()
    return bool(changed)


def fetch(**filters: Any) -> QuerySet[Job]:
    """Jobs matching Django lookups, newest first: ``fetch(status="failed", tag="mail")``."""
    return Job.objects.using(_using()).filter(**filters)


def clean(
    tags: str | Sequence[str] | None = None,
    status: str | Sequence[str] | None = "completed",
    older_than: Any = None,
    *,
    batch_size: int = 1000,
) -> int:
    """Delete finished jobs (with their logs and runs) in batches; return how many.

    ``status`` is one status or several (``None`` means every finished status);
    live jobs are never deleted. ``older_than`` is a duration (``"7d"``) or a
    datetime, compared with when the job finished. Each batch is its own short
    transaction, so cleaning a million rows never holds one giant lock.
    """
    statuses = _finished_statuses(status)
    queryset = Job.objects.using(_using()).finished(statuses)
    if tags is not None:
        queryset = queryset.filter(tag__in=[tags] if isinstance(tags, str) else list(tags))
    if older_than is not None:
        cutoff = (
            older_than
            if isinstance(older_than, datetime)
            else (timezone.now() - timedelta(seconds=parse_duration(older_than, what="older_than")))
        )
        queryset = queryset.filter(finished_at__lt=cutoff)
    deleted = 0
    for ids in batches_of_ids(queryset, batch_size):
        deleted += delete_jobs(ids)
    return deleted


def _finished_statuses(status: str | Sequence[str] | None) -> list[str]:
    if status is None:
        return list(FINISHED_STATUSES)
    statuses = [status] if isinstance(status, str) else list(status)
    for value in statuses:
        if value not in FINISHED_STATUSES:
            raise ValueError(
                f"clean() only deletes finished jobs; status {value!r} is not one of {', '.join(FINISHED_STATUSES)}"
            )
    return statuses


def batches_of_ids(queryset: QuerySet[Job], size: int) -> Iterable[list[int]]:
    """Ids of ``queryset`` in ascending batches, each read fresh (keyset pagination)."""
    last = 0
    while True:
        ids = list(queryset.filter(pk__gt=last).order_by("pk").values_list("pk", flat=True)[:size])
        if not ids:
            return
        yield ids
        last = ids[-1]


def delete_jobs(ids: Sequence[int]) -> int:
    """Delete these jobs and their logs and runs in one short transaction.

    Jobs waiting for a deleted job that had not completed are cancelled first
    (or run anyway, with ``on_parent_failure="run"``).
    """
    using = _using()
    lifecycle.deleting(ids, using)
    return get_backend(using).delete_jobs(ids)


def stats() -> dict[str, Any]:
    """Counts of jobs by status, by task and by tag.

    ``{"status": {"queued": 3, ...}, "tasks": {"send email": {"queued": 3}},
    "tags": {"mail": {"queued": 3}}, "total": 3, "holds": [...]}``; every
    status appears in ``status``, with 0 where there are none. ``holds``: the
    tasks and limit keys held by ``kinetik.RateLimited`` now, each
    ``{"task", "key", "until", "reason"}`` (``key`` "" for the whole task).
    """
    by_status: dict[str, int] = {value: 0 for value in Status.values}
    by_task: dict[str, dict[str, int]] = {}
    by_tag: dict[str, dict[str, int]] = {}
    for task, tag, status, count in job_counts():
        by_status[status] = by_status.get(status, 0) + count
        by_task.setdefault(task, {})
        by_task[task][status] = by_task[task].get(status, 0) + count
        by_tag.setdefault(tag, {})
        by_tag[tag][status] = by_tag[tag].get(status, 0) + count
    held = Hold.objects.using(_using()).filter(until__gt=timezone.now()).order_by("until")
    holds = [{"task": h.task, "key": h.key, "until": h.until, "reason": h.reason} for h in held]
    return {"status": by_status, "tasks": by_task, "tags": by_tag, "total": sum(by_status.values()), "holds": holds}


def job_counts() -> list[tuple[str, str, str, int]]:
    """Exact ``(task, tag, status, count)`` rows for every job (the stats' and the metrics' numbers).

    On PostgreSQL finished jobs are not read: triggers count them as they
    finish (``models/counts.py``), so this costs the same at ten jobs or ten
    million. Elsewhere it counts every row the purge has kept.
    """
    return get_backend().job_counts()


def tags() -> list[str]:
    """Tags this process knows: those of registered tasks, then any paused ones."""
    paused = TagState.objects.using(_using()).values_list("tag", flat=True)
    return list(dict.fromkeys([*registry.tags(), *paused]))


def pause(tag: str) -> None:
    """Stop every worker claiming jobs of ``tag`` (within one interval); running jobs finish."""
    _set_paused(tag, True)


def resume(tag: str) -> None:
    """Let workers claim jobs of ``tag`` again."""
    _set_paused(tag, False)


def _set_paused(tag: str, paused: bool) -> None:
    # Write first, never read-then-write in one transaction: on SQLite that
    # fails with "database is locked" while a worker is writing.
    tag = parse_tag(tag)
    states = TagState.objects.using(_using())
    changes = {"paused": paused, "changed_at": timezone.now()}
    if states.filter(tag=tag).update(**changes):
        return
    try:
        with transaction.atomic(using=_using()):
            states.create(tag=tag, **changes)
    except IntegrityError:
        states.filter(tag=tag).update(**changes)


def is_paused(tag: str) -> bool:
    return TagState.objects.using(_using()).filter(tag=tag, paused=True).exists()
