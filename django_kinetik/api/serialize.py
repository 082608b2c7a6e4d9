"""Jobs and log lines as the API shows them: JSON types only, ISO-8601 times.

Times keep their microseconds and are written in UTC with a ``Z``, so a
client can compare them as strings and lose nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ..models import Job, JobLog, Worker


def timestamp(value: datetime | None) -> str | None:
    """``value`` in ISO-8601, UTC, ending in ``Z``; None stays None."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def job_json(job: Job) -> dict[str, Any]:
    """One job: what it is, where it is in its life, and what it produced."""
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
        "attempts": job.attempts,
        "ghosts": job.ghosts,
        "unique_key": job.unique_key,
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
