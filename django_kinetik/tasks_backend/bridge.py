"""Where django.tasks meets kinetik's lifecycle: its jobs' definitions, and Django's ``task_finished``.

Installed for every project when the app is ready (``apps.py``), importing
nothing of the Tasks framework until a django.tasks job is actually met:

- a registry resolver: a job enqueued through the backend names its function
  by module path, which a worker that never imported it imports now;
- a lifecycle hook: once a django.tasks job's end is committed (completed,
  failed, timed out, lost for good, cancelled), Django's ``task_finished`` is
  sent with its TaskResult. A failed attempt that will be retried is not an
  end (the result is READY again), so it sends nothing;
- a ``setting_changed`` receiver: new ``TASKS`` OPTIONS apply to tasks
  already met (``running.tasks_changed``).

The order: the end is committed first, then ``task_finished`` is sent, so a
receiver that reads the result (``refresh()``, another process) sees what it
is told. For a failure, the attempt's exception is raised again around the
send, with its own traceback, because Django's log receiver takes the
exception from ``sys.exc_info()`` (the reference backends send it inside
their ``except``): its ERROR line has the traceback. A timeout, a lost run
and a cancel are their ``JobTimeout``, ``JobLost``, ``JobCancelled``.
"""

from __future__ import annotations

import logging

from django.core.signals import setting_changed

from .. import lifecycle
from ..exceptions import JobCancelled, JobLost, JobTimeout, TaskNotImportable
from ..models import FINISHED_STATUSES, NOT_IMPORTABLE, Job, Status
from ..outcomes import TIMEOUT_CODE
from ..registry import Task, registry

logger = logging.getLogger("django_kinetik.tasks_backend")


def _resolve(job: Job) -> Task | None:
    if not job.task_backend:
        return None
    from .running import import_definition

    return import_definition(job.task, job.task_backend)


def _transitioned(transition: lifecycle.Transition) -> None:
    if transition.cause == lifecycle.Cause.STARTED:
        return
    for job in transition.jobs:
        if not job.task_backend:
            continue
        from . import running

        started = running.started_results.pop(job.pk, None)
        error = running.attempt_errors.pop(job.pk, None)
        if transition.status in FINISHED_STATUSES:
            _send_finished(job, started, error or _error_of(transition, job))


def _error_of(transition: lifecycle.Transition, job: Job) -> BaseException | None:
    """The exception of an end that no code of the job raised here (a timeout, a lost run, a cancel)."""
    settlement = transition.settlement
    if settlement is not None and settlement.error_code == TIMEOUT_CODE:
        return JobTimeout(settlement.error)
    if settlement is not None and settlement.lost:
        return JobLost(settlement.error)
    if settlement is not None and settlement.error_code == NOT_IMPORTABLE:
        return TaskNotImportable(job.task, "", message=settlement.error)  # raised by no code: the worker's verdict
    if job.status == Status.CANCELLED:
        return JobCancelled(job)
    return None


def _send_finished(job: Job, started: object, error: BaseException | None) -> None:
    from . import results, running
    from .framework import TaskResultDoesNotExist, TaskResultStatus, task_finished

    try:
        if started is not None and job.status == Status.COMPLETED:
            # A completed attempt adds no error and no worker: the result it started with, ended.
            result = results.finished(job, started)  # type: ignore[arg-type]
        else:
            result = results.load(job)  # an error to add, or no attempt ran here (a cancel)
    except TaskResultDoesNotExist as problem:
        logger.warning("No task_finished for job %s: %s", job.pk, problem)
        return
    if error is None or result.status != TaskResultStatus.FAILED:
        running.send(task_finished, job.task_backend, result)
        return
    kept = error.__traceback__, error.__context__, error.__suppress_context__
    try:
        raise error
    except BaseException:
        # The attempt's own traceback and chain, without this frame or whatever its caller handles.
        error.__traceback__, error.__context__, error.__suppress_context__ = kept
        running.send(task_finished, job.task_backend, result)


def _is_django_task(job: Job) -> bool:
    return bool(job.task_backend)


def connect() -> None:
    registry.add_resolver(_resolve)
    lifecycle.install(_transitioned, wants=_is_django_task)
    setting_changed.connect(_tasks_changed, dispatch_uid="django_kinetik.tasks_backend.options")


def _tasks_changed(*, setting: str, **kwargs: object) -> None:
    if setting == "TASKS":
        from .running import tasks_changed

        tasks_changed()
