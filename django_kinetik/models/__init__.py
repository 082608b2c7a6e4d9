"""The queue's records: jobs, their attempts and logs, live workers, paused tags.

The database is the system of record. A job's status only ever changes through
a conditional ``UPDATE ... WHERE status IN (...)`` (written by ``backends/``,
announced by ``lifecycle.py``), so two processes racing on one job cannot both
win. This package imports nothing above it: ``Job.cancel()`` and friends
reach the service layer through :mod:`django_kinetik.services`.

``statuses.py`` (a job's statuses, an attempt's outcomes), ``jobs.py`` (Job
and its JobQuerySet, JobDependency, JobRun, JobLog), ``workers.py``,
``state.py`` (TagState, Schedule, LimitState), ``counts.py`` (JobCount: finished
jobs counted as they finish, on PostgreSQL).
"""

from .counts import JobCount
from .jobs import MAX_JOB_ID, Job, JobDependency, JobLog, JobQuerySet, JobRun, worker_reference
from .state import Hold, LimitState, Schedule, TagState
from .statuses import (
    FINISHED_STATUSES,
    LIVE_STATUSES,
    NOT_IMPORTABLE,
    RETRYABLE_STATUSES,
    RUNNABLE_NOW,
    WAITING_FOR_CODE,
    Outcome,
    Status,
    cancelled,
    requeued,
)
from .workers import Worker

__all__ = [
    "FINISHED_STATUSES",
    "LIVE_STATUSES",
    "MAX_JOB_ID",
    "NOT_IMPORTABLE",
    "RETRYABLE_STATUSES",
    "RUNNABLE_NOW",
    "WAITING_FOR_CODE",
    "Hold",
    "Job",
    "JobCount",
    "JobDependency",
    "JobLog",
    "JobQuerySet",
    "JobRun",
    "LimitState",
    "Outcome",
    "Schedule",
    "Status",
    "TagState",
    "Worker",
    "cancelled",
    "requeued",
    "worker_reference",
]
