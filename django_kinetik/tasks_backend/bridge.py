"""Where django.tasks meets kinetik's lifecycle: its jobs' definitions, and Django's ``task_finished``.

Installed for every project when the app is ready (``apps.py``), importing
nothing of the Tasks framework until a django.tasks job is actually met:

- a registry resolver: a job enqueued through the backend names its function
  by module path, which a worker that never imported it imports now;
- a lifecycle hook: once a django.tasks job's end is committed (completed,
  failed, timed out, lost for good, cancelled), Django's ``task_finished`` is
  sent with its TaskResult. A failed attempt that will be retried is not an
  end (the result is READY again), so it sends nothing.
"""

from __future__ import annotations

import logging

from .. import lifecycle
from ..models import FINISHED_STATUSES, Job, Status
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
        if transition.status in FINISHED_STATUSES:
            _send_finished(job, started)


def _send_finished(job: Job, started: object) -> None:
    from . import results, running
    from .framework import TaskResultDoesNotExist, task_finished

    try:
        if started is not None and job.status == Status.COMPLETED:
            # A completed attempt adds no error and no worker: the result it started with, ended.
            result = results.finished(job, started)  # type: ignore[arg-type]
        else:
            result = results.load(job)  # an error to add, or no attempt ran here (a cancel)
    except TaskResultDoesNotExist as error:
        logger.warning("No task_finished for job %s: %s", job.pk, error)
        return
    running.send(task_finished, job.task_backend, result)


def _is_django_task(job: Job) -> bool:
    return bool(job.task_backend)


def connect() -> None:
    registry.add_resolver(_resolve)
    lifecycle.install(_transitioned, wants=_is_django_task)
