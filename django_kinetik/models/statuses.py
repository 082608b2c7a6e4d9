"""A job's statuses, an attempt's outcomes, and the changes that move a job between them."""

from __future__ import annotations

from typing import Any

from django.db import models
from django.utils import timezone


class Status(models.TextChoices):
    QUEUED = "queued"
    DELAYED = "delayed"  # scheduled for later, or waiting to retry
    WAITING = "waiting"  # for the jobs it runs after (create(after=[...]))
    ACTIVE = "active"
    COMPLETED = "completed"
    FAILED = "failed"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"


#: statuses of a job that has not run to an end yet
LIVE_STATUSES = (Status.QUEUED, Status.DELAYED, Status.WAITING, Status.ACTIVE)
#: statuses a job ends in (until someone retries it)
FINISHED_STATUSES = (Status.COMPLETED, Status.FAILED, Status.TIMEOUT, Status.CANCELLED)


#: the error code of a queued job that waits for a worker with its code: its ``error`` says which
#: worker could not run it and why (see ``worker/missing.py``)
WAITING_FOR_CODE = "waiting_for_code"
#: the error code of a job that failed because no worker has its code (a worker started after
#: it was created could not import it)
NOT_IMPORTABLE = "not_importable"

#: statuses a job can be retried from by hand
RETRYABLE_STATUSES = (Status.FAILED, Status.TIMEOUT, Status.CANCELLED)
#: what "run now" moves to the queue: scheduled jobs, and jobs waiting for others (which stop waiting)
RUNNABLE_NOW = (Status.DELAYED, Status.WAITING)


def cancelled() -> dict[str, Any]:
    """The changes that cancel a job (shared by one-job and bulk cancels)."""
    return {"status": Status.CANCELLED, "finished_at": timezone.now(), "lease_expires_at": None}


def requeued() -> dict[str, Any]:
    """The changes that queue a finished job again with a fresh set of attempts.

    The job starts over: what its last run left (times, progress, result,
    error) goes; ``job.runs`` keeps the history.
    """
    return {
        "status": Status.QUEUED,
        "attempts": 0,
        "ghosts": 0,
        "run_at": timezone.now(),
        "started_at": None,
        "finished_at": None,
        "progress_current": None,
        "progress_total": None,
        "progress_data": None,
        "result": None,
        "error": "",
        "error_code": "",
        "worker": None,
        "lease_expires_at": None,
    }


class Outcome(models.TextChoices):
    """How one attempt (a :class:`JobRun`) ended."""

    COMPLETED = "completed"
    FAILED = "failed"
    TIMEOUT = "timeout"
    INTERRUPTED = "interrupted"  # the worker stopped and put the job back
    LOST = "lost"  # the worker vanished; its lease expired
    CANCELLED = "cancelled"  # cancelled while it ran; its code was told, then stopped
    SNOOZED = "snoozed"  # the code asked to run later (kinetik.Snooze); not an attempt
    RATE_LIMITED = "rate_limited"  # a downstream said "later" (kinetik.RateLimited); not an attempt
