"""Running one claimed job: middleware, the action, the outcome, the settle, the signals.

This is the single execution path: the worker's threads use it, and so will
eager mode and the test helpers, so what a test sees is what production does.
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from asgiref.sync import async_to_sync
from django.db import DatabaseError, InterfaceError, connections

from ..backends.base import Backend, Settlement
from ..feed import publishing
from ..middleware import MiddlewareFactory, build_chain
from ..models import Job, Status
from ..registry import Task, registry
from ..signals import emit, job_completed, job_failed, job_retrying, job_started, job_timeout
from ..values.jsondata import ensure_json
from ..values.options import TaskOptions
from . import outcomes
from .context import JobContext
from .logwriter import LogWriter

logger = logging.getLogger("django_kinetik.worker")

#: errors that mean "the database is unreachable right now", not "this job is wrong"
DATABASE_ERRORS = (DatabaseError, InterfaceError)


def _call_action(job: JobContext) -> Any:
    action = job.definition.action  # type: ignore[union-attr]
    if inspect.iscoroutinefunction(action):
        return async_to_sync(action)(job)
    return action(job)


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
        try:
            if not connection.get_autocommit() and not connection.in_atomic_block:
                # The job turned autocommit off and left a transaction open.
                connection.rollback()
                connection.set_autocommit(True)
            if connection.errors_occurred:
                if connection.is_usable():
                    connection.errors_occurred = False
                else:
                    connection.close()
        except DATABASE_ERRORS:
            connection.close()


T = TypeVar("T")


def ride_out(write: Callable[[bool], T], lease: float, what: str) -> T | None:
    """Run a settle-like ``write``, riding out a database that is briefly unreachable.

    Retries with backoff for up to one lease (after that the jobs' leases run
    out and another worker takes them back, so giving up loses nothing).
    ``write`` is told whether this is a retry: after a dropped connection its
    earlier attempt may have committed, which it must check before concluding
    that a guarded write found nothing to change. Returns None on giving up.
    """
    deadline = time.monotonic() + lease
    pause = 0.1
    retried = False
    while True:
        try:
            return write(retried)
        except DATABASE_ERRORS as error:
            retried = True
            connections.close_all()
            if time.monotonic() + pause > deadline:
                logger.error("Could not record the end of %s: %s; the lease will bring it back.", what, error)
                return None
            logger.warning("Database error recording %s (%s); retrying in %.1fs.", what, error, pause)
            time.sleep(pause)
            pause = min(pause * 2, 5.0)


def jobs_ended(backend: Backend, jobs: list[Job]) -> None:
    """Move on the jobs waiting for these; a database error is left to the workers' sweep."""
    if not jobs:
        return
    try:
        backend.jobs_ended(jobs)
    except DATABASE_ERRORS as error:
        connections.close_all()
        logger.warning(
            "Could not look for jobs waiting on %d finished job(s) (%s); the workers' sweep will.", len(jobs), error
        )


@dataclass(eq=False)
class RunningJob:
    """A claimed job while this worker runs it."""

    job: Job
    task: Task
    options: TaskOptions
    context: JobContext
    #: time.monotonic() after which the run is timed out (None: no limit)
    deadline: float | None
    started: float = field(default_factory=time.monotonic)


class Executor:
    """Executes claimed jobs through the middleware chain and settles them."""

    def __init__(
        self,
        backend: Backend,
        alias: str,
        middleware: list[MiddlewareFactory],
        *,
        lease: float = 60.0,
        logs: LogWriter | None = None,
        worker_name: str = "",
    ) -> None:
        self.backend = backend
        self.alias = alias
        self.lease = lease
        #: the name jobs see as ``job.worker_name`` (the Worker row's name)
        self.worker_name = worker_name
        #: where job log lines go; a worker hands this to its settler to write in batches
        self.logs = LogWriter(alias) if logs is None else logs
        self._chain = build_chain(_call_action, middleware)

    def start(self, job: Job) -> RunningJob:
        """Prepare a claimed job to run: its task, options, context and deadline."""
        task = registry.for_job(job)
        options = outcomes.run_options(task, job)
        started = time.monotonic()
        return RunningJob(
            job=job,
            task=task,
            options=options,
            context=JobContext(job, task, self.alias, self.logs, worker_name=self.worker_name),
            deadline=None if options.timeout is None else started + options.timeout,
            started=started,
        )

    def run(self, running: RunningJob) -> Settlement | None:
        """Run the job's code; return how it ended, to be recorded (None: timed out meanwhile)."""
        job = running.job
        publishing.started(job)
        emit(job_started, Job, job=job, task=running.task)
        try:
            settlement = outcomes.completed(ensure_json(self._chain(running.context), what="the task's return value"))
        except BaseException as error:
            # SystemExit or KeyboardInterrupt raised by a job's code fail the job
            # like any error; only a real Ctrl-C (the main thread: eager mode) stops.
            if isinstance(error, KeyboardInterrupt) and threading.current_thread() is threading.main_thread():
                raise
            settlement = outcomes.failed(job, running.options, error)
        finally:
            tidy_connections()
        if running.context.closed:
            # Timed out (or given up) while it ran: its result is not wanted.
            logger.info("Job %s (%s) returned after it had timed out; result ignored.", job.pk, job.task)
            return None
        running.context.close()
        return settlement

    def recorded(self, running: RunningJob, settlement: Settlement, settled: bool) -> None:
        """After the write: announce the outcome, or say why it was discarded."""
        if settled:
            self.announce(running.job, running.task, settlement)
        else:
            logger.warning(
                "Job %s (%s) was cancelled or taken back while it ran; its outcome (%s) was discarded.",
                running.job.pk,
                running.job.task,
                settlement.outcome,
            )

    def time_out(self, running: RunningJob) -> Settlement | None:
        """The run passed its deadline: stop listening to it and settle it as timed out."""
        running.context.close()
        settlement = outcomes.timed_out(running.job, running.options)
        if self.settle(running.job, settlement):
            self.announce(running.job, running.task, settlement)
            return settlement
        return None

    def lose(self, job: Job) -> Settlement | None:
        """Settle a job whose lease ran out (its worker is gone): a ghost run."""
        task = registry.find(job.task)
        options = outcomes.run_options(task, job)
        worker_name = job.worker.name if job.worker is not None else ""
        settlement = outcomes.lost(job, options, worker_name)
        if not self.settle(job, settlement):
            return None  # its worker renewed the lease after all, or another worker got there first
        logger.warning("Job %s (%s): %s.", job.pk, job.task, settlement.error)
        self.announce(job, task, settlement)
        return settlement

    def settle(self, job: Job, settlement: Settlement) -> bool:
        """Write one attempt's end now (timeouts and lost runs; finished runs go through the Settler)."""

        def write(retried: bool) -> bool:
            if self.backend.settle(job, settlement):
                return True
            return retried and self.backend.was_settled(job, settlement)

        settled = ride_out(write, self.lease, f"job {job.pk}") or False
        if settled and settlement.ends_job:
            jobs_ended(self.backend, [job])
        return settled

    def announce(self, job: Job, task: Task | None, settlement: Settlement) -> None:
        """After the attempt's end is committed: the live event, the log line, the signal."""
        publishing.ended(job, settlement)
        status = settlement.status
        if status == Status.COMPLETED:
            logger.info("Job %s (%s) completed.", job.pk, job.task)
            emit(job_completed, Job, job=job, task=task)
        elif status in (Status.QUEUED, Status.DELAYED):
            logger.info(
                "Job %s (%s) attempt %s ended (%s); it runs again at %s.",
                job.pk,
                job.task,
                job.attempts,
                settlement.error,
                settlement.run_at,
            )
            emit(job_retrying, Job, job=job, task=task, error=settlement.error, run_at=settlement.run_at)
        elif status == Status.TIMEOUT:
            logger.warning("Job %s (%s) %s.", job.pk, job.task, settlement.error)
            emit(job_timeout, Job, job=job, task=task, error=settlement.error)
        else:
            logger.warning("Job %s (%s) failed: %s", job.pk, job.task, settlement.error)
            emit(job_failed, Job, job=job, task=task, error=settlement.error)
