"""Running one claimed job: middleware, the action, the outcome, the settle, the signals.

This is the single execution path: the worker's threads use it, and so will
eager mode and the test helpers, so what a test sees is what production does.
"""

from __future__ import annotations

import inspect
import logging
import traceback
from datetime import timedelta
from typing import Any

from asgiref.sync import async_to_sync
from django.db import connections
from django.utils import timezone

from ..backends.base import Backend, Settlement
from ..backoff import retry_delay
from ..jsondata import ensure_json
from ..middleware import MiddlewareFactory, build_chain
from ..models import Job, Outcome, Status
from ..options import RUN_OPTION_NAMES, TaskOptions
from ..registry import Task, registry
from ..signals import emit, job_completed, job_failed, job_retrying, job_started
from .context import JobContext

logger = logging.getLogger("django_kinetik.worker")


def _call_action(job: JobContext) -> Any:
    action = job.definition.action  # type: ignore[union-attr]
    if inspect.iscoroutinefunction(action):
        return async_to_sync(action)(job)
    return action(job)


def run_options(task: Task, job: Job) -> TaskOptions:
    """The options one job runs with: task defaults < settings < create() options."""
    overrides = {name: value for name, value in job.options.items() if name in RUN_OPTION_NAMES}
    return task.effective_options().merged(overrides, where=f"job {job.pk} options")


def tidy_connections() -> None:
    """After a job: drop connections its code broke, keep healthy ones open.

    A worker is a long-lived process, so unlike a request it keeps its
    connection between jobs (reconnecting per job would cost more than most
    jobs). A connection that errored and no longer answers is closed, and
    Django reconnects on next use.
    """
    for connection in connections.all(initialized_only=True):
        if connection.connection is None:
            continue
        if not connection.get_autocommit() and not connection.in_atomic_block:
            # The job turned autocommit off and left a transaction open.
            connection.rollback()
            connection.set_autocommit(True)
        if connection.errors_occurred:
            if connection.is_usable():
                connection.errors_occurred = False
            else:
                connection.close()


class Executor:
    """Executes claimed jobs through the middleware chain and settles them."""

    def __init__(self, backend: Backend, alias: str, middleware: list[MiddlewareFactory]) -> None:
        self.backend = backend
        self.alias = alias
        self._chain = build_chain(_call_action, middleware)

    def execute(self, job: Job) -> Settlement:
        """Run ``job`` (already claimed and active) and record how it ended."""
        task = registry.get(job.task)
        context = JobContext(job, task, self.alias)
        emit(job_started, Job, job=job, task=task)
        try:
            result = ensure_json(self._chain(context), what="the task's return value")
        except Exception as error:
            settlement = self._failure(job, task, error)
        else:
            settlement = Settlement(
                status=Status.COMPLETED,
                outcome=Outcome.COMPLETED,
                result=result,
                finished_at=timezone.now(),
            )
        finally:
            context.close()
            tidy_connections()
        if not self.backend.settle(job, settlement):
            logger.warning(
                "Job %s (%s) was cancelled or taken back while it ran; its outcome (%s) was discarded.",
                job.pk,
                job.task,
                settlement.outcome,
            )
            return settlement
        self._announce(job, task, settlement)
        return settlement

    def _failure(self, job: Job, task: Task, error: Exception) -> Settlement:
        now = timezone.now()
        message = str(error) or type(error).__name__
        code = getattr(error, "code", None)
        details: dict[str, Any] = {
            "outcome": Outcome.FAILED,
            "finished_at": now,
            "error": message,
            "error_code": "" if code is None else str(code)[:100],
            "traceback": "".join(traceback.format_exception(error)),
        }
        options = run_options(task, job)
        if job.attempts < options.max_attempts:
            delay = retry_delay(options, job.attempts)
            return Settlement(
                status=Status.DELAYED if delay > 0 else Status.QUEUED,
                run_at=now + timedelta(seconds=delay),
                **details,
            )
        return Settlement(status=Status.FAILED, **details)

    def _announce(self, job: Job, task: Task, settlement: Settlement) -> None:
        status = settlement.status
        if status == Status.COMPLETED:
            logger.info("Job %s (%s) completed.", job.pk, job.task)
            emit(job_completed, Job, job=job, task=task)
        elif status in (Status.QUEUED, Status.DELAYED):
            logger.info(
                "Job %s (%s) failed attempt %s (%s); retrying at %s.",
                job.pk,
                job.task,
                job.attempts,
                settlement.error,
                settlement.run_at,
            )
            emit(job_retrying, Job, job=job, task=task, error=settlement.error, run_at=settlement.run_at)
        else:
            logger.warning("Job %s (%s) failed: %s", job.pk, job.task, settlement.error)
            emit(job_failed, Job, job=job, task=task, error=settlement.error)
