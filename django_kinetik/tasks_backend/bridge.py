"""Django's ``task_finished``, sent when kinetik's own signals say a ``django.tasks`` job ended.

kinetik sends ``job_completed``, ``job_failed`` and ``job_timeout`` once an
attempt's end is committed (in the worker, or in the creating process in
eager mode), and ``job_cancelled`` where a job is cancelled: the moments its
TaskResult becomes finished. A failed attempt that will be retried is not an
end (the result is READY again), so it sends nothing. Connected for every
project at start-up; the Tasks framework is imported only when such a job
actually ends.
"""

from __future__ import annotations

import logging
from typing import Any

from ..models import Job, Status
from ..signals import job_cancelled, job_completed, job_failed, job_timeout

logger = logging.getLogger("django_kinetik.tasks_backend")


def _finished(sender: Any, job: Job, **kwargs: Any) -> None:
    if not job.task_backend:
        return
    from . import results, running
    from .framework import TaskResultDoesNotExist, task_finished

    started = getattr(job, "started_result", None)
    try:
        if started is not None and job.status == Status.COMPLETED:
            result = results.finished(job, started)
        else:
            result = results.load(job)  # an error to add, or no attempt ran here (a cancel)
    except TaskResultDoesNotExist as error:
        logger.warning("No task_finished for job %s: %s", job.pk, error)
        return
    running.send(task_finished, job.task_backend, result)


def connect() -> None:
    for signal in (job_completed, job_failed, job_timeout, job_cancelled):
        signal.connect(_finished, sender=Job, dispatch_uid="django_kinetik.tasks_backend.bridge")
