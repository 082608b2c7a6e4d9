"""A job as ``django.tasks`` sees it: the TaskResult built from a Job row and its runs.

Statuses map as the framework defines them: a job waiting to run (queued,
delayed for later, or waiting to retry) is READY; active is RUNNING;
completed is SUCCESSFUL; failed, timed out, cancelled and lost are FAILED.
Every attempt that ended in an error contributes a TaskError, in order, with
the importable path of its exception class; a cancelled job ends with a
``JobCancelled`` error, so a FAILED result always says why.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from ..backends import get_backend
from ..conf import get_settings
from ..exceptions import JobCancelled, TaskNotImportable
from ..models import FINISHED_STATUSES, NOT_IMPORTABLE, WAITING_FOR_CODE, Job, Outcome, Status, Worker
from .framework import InvalidTask, Task, TaskError, TaskResult, TaskResultDoesNotExist, TaskResultStatus

STATUSES = {
    Status.QUEUED: TaskResultStatus.READY,
    Status.DELAYED: TaskResultStatus.READY,
    Status.WAITING: TaskResultStatus.READY,
    Status.ACTIVE: TaskResultStatus.RUNNING,
    Status.COMPLETED: TaskResultStatus.SUCCESSFUL,
    Status.FAILED: TaskResultStatus.FAILED,
    Status.TIMEOUT: TaskResultStatus.FAILED,
    Status.CANCELLED: TaskResultStatus.FAILED,
}
#: attempt outcomes that are errors (an interrupted run was put back by its worker: not an error)
_ERROR_OUTCOMES = (Outcome.FAILED, Outcome.TIMEOUT, Outcome.LOST)
_CANCELLED = f"{JobCancelled.__module__}.{JobCancelled.__qualname__}"


def django_task(job: Job) -> Task:
    """The ``django.tasks`` Task a job was enqueued from, with the job's queue, priority and ``run_after``."""
    try:
        task = import_string(job.task)
    except ImportError as error:
        if job.error_code in (NOT_IMPORTABLE, WAITING_FOR_CODE):
            return stand_in(job)  # its result says why; task_finished is sent for its failure
        raise TaskResultDoesNotExist(f"Job {job.pk}'s task {job.task!r} cannot be imported here: {error}") from None
    if not isinstance(task, Task):
        if job.error_code in (NOT_IMPORTABLE, WAITING_FOR_CODE):
            return stand_in(job)
        raise TaskResultDoesNotExist(f"Job {job.pk}'s task {job.task!r} is not a Task of this Tasks framework.")
    # The run_after given at enqueue, never run_at: that one moves to when a retry is due.
    run_after = job.run_after
    alias = job.task_backend or task.backend
    if (task.queue_name, task.priority, task.backend, task.run_after) == (job.tag, job.priority, alias, run_after):
        return task  # as decorated: no copy to validate
    try:
        return task.using(queue_name=job.tag, priority=job.priority, run_after=run_after, backend=alias)
    except (InvalidTask, ImproperlyConfigured):
        # The settings changed since the job was enqueued (a queue or backend
        # removed): the result is still worth reading, with the task's defaults.
        return task


def stand_in(job: Job) -> Task:
    """A Task standing for the function of a job no worker could import: its module path, queue and priority.

    Built without the backend's validation, which would register the function
    as runnable in this process; calling it raises :class:`TaskNotImportable`.
    """
    module, _, name = job.task.rpartition(".")

    def missing(*args: Any, **kwargs: Any) -> Any:
        raise TaskNotImportable(job.task, "its code is not in this process")

    missing.__module__, missing.__qualname__, missing.__name__ = module, name, name
    task: Any = object.__new__(Task)
    values = {field.name: field.default for field in dataclasses.fields(Task)}
    values.update(func=missing, priority=job.priority, backend=job.task_backend, queue_name=job.tag)
    for field, value in values.items():
        object.__setattr__(task, field, value)
    return task  # type: ignore[no-any-return]


def task_result(
    job: Job, runs: Sequence[Run], *, task: Task | None = None, workers: dict[int, str] | None = None
) -> TaskResult:
    """The TaskResult of ``job``, whose ended attempts are ``runs`` (oldest first)."""
    workers = workers or {}
    active = job.status == Status.ACTIVE
    starts: list[datetime] = [run.started_at for run in runs]
    worker_ids = [_worker_id(run.worker_id, workers) for run in runs]
    if active and job.started_at is not None:
        starts.append(job.started_at)
        worker_ids.append(_worker_id(job.worker_id, workers))
    data = job.data if isinstance(job.data, dict) else {}
    result: Any = TaskResult(
        task=task if task is not None else django_task(job),
        id=str(job.pk),
        status=STATUSES[Status(job.status)],
        enqueued_at=job.created_at,
        started_at=starts[0] if starts else None,
        last_attempted_at=starts[-1] if starts else None,
        finished_at=job.finished_at if job.status in FINISHED_STATUSES else None,
        args=data.get("args", []),
        kwargs=data.get("kwargs", {}),
        backend=job.task_backend,
        errors=_errors(job, runs),
        worker_ids=worker_ids,
    )
    if job.status == Status.COMPLETED:
        object.__setattr__(result, "_return_value", job.result)
    return result


def _worker_id(pk: int | None, names: dict[int, str]) -> str:
    """A worker's name; its id if the row was purged; "eager" for a run in eager mode (no worker)."""
    if pk is None:
        return EAGER
    return names.get(pk) or str(pk)


EAGER = "eager"


def _errors(job: Job, runs: Sequence[Run]) -> list[Any]:
    errors = [
        TaskError(
            exception_class_path=run.exception or "builtins.Exception",
            traceback=run.traceback or f"{run.exception or 'Exception'}: {run.error}",
        )
        for run in runs
        if run.outcome in _ERROR_OUTCOMES
    ]
    if job.status == Status.CANCELLED:
        errors.append(TaskError(exception_class_path=_CANCELLED, traceback=f"{_CANCELLED}: job {job.pk} was cancelled"))
    return errors


class Run(NamedTuple):
    """The parts of a JobRun a TaskResult is built from."""

    outcome: str
    started_at: datetime
    worker_id: int | None
    worker_name: str | None
    error: str
    exception: str
    traceback: str


def runs_of(job: Job) -> list[Run]:
    """The job's ended attempts, oldest first, with the names of their workers."""
    return [Run(*row) for row in get_backend(job._state.db or get_settings().database).runs_of(job.pk)]


def load(job: Job, *, task: Task | None = None, current_worker: str = "") -> TaskResult:
    """:func:`task_result` for a job, reading its runs with the names of the workers that ran them.

    ``current_worker`` names the worker running an active job (a worker knows
    its own name; otherwise it is read too).
    """
    runs = runs_of(job)
    name: str | None = current_worker
    if job.status == Status.ACTIVE and job.worker_id and not name:
        name = Worker.objects.using(job._state.db).filter(pk=job.worker_id).values_list("name", flat=True).first()
    return _result(job, runs, name, task=task)


#: the Job row's columns, as read by :func:`read`
_JOB_COLUMNS = tuple(field.attname for field in Job._meta.concrete_fields)
#: then, per run (one row each, oldest first; one row of NULLs for a job without runs)
_RUN_COLUMNS = (
    "runs__outcome",
    "runs__started_at",
    "runs__worker_id",
    "runs__worker__name",
    "runs__error",
    "runs__exception",
    "runs__traceback",
)


def read(alias: str, job_id: int, task_backend: str) -> TaskResult | None:
    """The TaskResult of job ``job_id`` enqueued by ``task_backend``, in one query; None if there is no such job.

    The job, its current worker's name and its runs with their workers' names
    come back as one LEFT JOIN (Django writes it for each database): the job's
    columns repeat on each run's row, which costs less than a second round trip.
    """
    rows = list(
        Job.objects.using(alias)
        .filter(pk=job_id, task_backend=task_backend)
        .values_list(*_JOB_COLUMNS, "worker__name", *_RUN_COLUMNS)
        .order_by("runs__id")
    )
    if not rows:
        return None
    width = len(_JOB_COLUMNS)
    job = Job.from_db(alias, list(_JOB_COLUMNS), rows[0][:width])
    runs = [Run(*row[width + 1 :]) for row in rows if row[width + 1] is not None]  # a run always has an outcome
    return _result(job, runs, rows[0][width])


def _result(job: Job, runs: list[Run], current_worker: str | None, *, task: Task | None = None) -> TaskResult:
    workers = {run.worker_id: run.worker_name for run in runs if run.worker_id and run.worker_name}
    if job.status == Status.ACTIVE and job.worker_id:
        workers[job.worker_id] = current_worker or ""
    return task_result(job, runs, task=task, workers=workers)


def finished(job: Job, started: TaskResult) -> TaskResult:
    """The result of a job that just completed, from the one its attempt started with: no query.

    A completed attempt adds no error and no worker, so only the end changes.
    """
    result: Any = dataclasses.replace(
        started, status=TaskResultStatus.SUCCESSFUL, finished_at=job.finished_at, errors=list(started.errors)
    )
    object.__setattr__(result, "_return_value", job.result)
    return result
