"""Jobs and log lines as the API shows them: JSON types only, ISO-8601 times.

Times keep their microseconds and are written in UTC with a ``Z``, so a
client can compare them as strings and lose nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from ..models import Job, JobDependency, JobLog, Worker


def timestamp(value: datetime | None) -> str | None:
    """``value`` in ISO-8601, UTC, ending in ``Z``; None stays None."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parents_of(jobs: Sequence[Job]) -> dict[int, list[int]]:
    """The ids each of ``jobs`` runs after, in one query for the lot."""
    if not jobs:
        return {}
    using = jobs[0]._state.db
    arrows = JobDependency.objects.using(using).filter(child_id__in=[job.pk for job in jobs]).order_by("id")
    parents: dict[int, list[int]] = {job.pk: [] for job in jobs}
    for child, parent in arrows.values_list("child_id", "parent_id"):
        parents[child].append(parent)
    return parents


def jobs_json(jobs: Sequence[Job]) -> list[dict[str, Any]]:
    """:func:`job_json` for a page of jobs (their parents read at once)."""
    parents = parents_of(jobs)
    return [job_json(job, after=parents[job.pk]) for job in jobs]


def job_json(job: Job, *, after: list[int] | None = None) -> dict[str, Any]:
    """One job: what it is, where it is in its life, and what it produced (``after``: its parents' ids)."""
    if after is None:
        after = parents_of([job])[job.pk]
    return {
        "id": job.pk,
        "task": job.task,
        "tag": job.tag,
        "priority": job.priority,
        "status": job.status,
        "data": job.data,
        "result": job.result,
        "error": job.error,
        "error_code": job.error_code,
        #: why a queued job is not running (no worker here has its code yet), else null
        "waiting": job.waiting_reason or None,
        "attempts": job.attempts,
        "ghosts": job.ghosts,
        "snoozes": job.snoozes,
        "unique_key": job.unique_key,
        "limit_key": job.limit_key,
        "after": after,
        "options": job.options,
        "run_at": timestamp(job.run_at),
        "created_at": timestamp(job.created_at),
        "started_at": timestamp(job.started_at),
        "finished_at": timestamp(job.finished_at),
        "progress": {"current": job.progress_current, "total": job.progress_total, "data": job.progress_data},
        "worker": worker_name(job),
        "task_backend": job.task_backend,
    }


def worker_name(job: Job) -> str | None:
    """The name of the worker that ran the job last, if its row still exists."""
    if job.worker_id is None:
        return None
    try:
        worker: Worker | None = job.worker
    except Worker.DoesNotExist:  # workers are purged; jobs keep the id (no constraint)
        return None
    return worker.name if worker is not None else None


def log_json(line: JobLog) -> dict[str, Any]:
    """One line of a job's log."""
    return {
        "id": line.pk,
        "attempt": line.attempt,
        "created_at": timestamp(line.created_at),
        "message": line.message,
        "data": line.data,
    }
