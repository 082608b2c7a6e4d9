"""One attempt at a claimed job: its definition and options, the middleware, the action, how it ended.

The single execution path: a worker's job threads run it, and so do eager
mode and the test helpers, so what a test sees is what production does. It
knows nothing of threads or deadlines (the worker's executor watches those);
the attempt's end is written by whoever called it, through the lifecycle.
"""

from __future__ import annotations

import logging
import threading
import time

from django.db import connections

from . import lifecycle, outage, outcomes
from .backends.base import DATABASE_ERRORS, Settlement
from .conf import get_settings
from .context import JobContext
from .exceptions import RateLimited, Snooze
from .joblogs import LogWriter
from .middleware import installed
from .models import Job
from .registry import Task, registry
from .values.jsondata import ensure_json
from .values.options import TaskOptions

logger = logging.getLogger("django_kinetik.jobs")


class Attempt:
    """A claimed job while it runs here, and (once its code returned) how it ended."""

    __slots__ = ("context", "deadline", "job", "options", "settlement", "started", "stopping_since", "task")

    def __init__(self, job: Job, task: Task, options: TaskOptions, context: JobContext, started: float) -> None:
        self.job = job
        self.task: Task | None = task
        self.options: TaskOptions | None = options
        self.context = context
        self.started = started
        #: time.monotonic() after which the attempt is timed out (None: no limit)
        self.deadline = None if options.timeout is None else started + options.timeout
        #: set when the code has returned (or raised): what to write
        self.settlement: Settlement | None = None
        #: time.monotonic() when the worker learnt the job was cancelled (or taken away) while this ran
        self.stopping_since: float | None = None

    def __repr__(self) -> str:
        return f"<Attempt {self.job.task!r} #{self.job.id} attempt {self.job.attempts}>"


def prepare(job: Job, *, alias: str, logs: LogWriter | None = None, worker_name: str = "") -> Attempt:
    """Get a claimed job ready to run: its definition, options and context.

    Raises :class:`~django_kinetik.exceptions.UnknownTask` (or ``TaskNotImportable``)
    when this process has no code for it.
    """
    task = registry.for_job(job)
    options = outcomes.run_options(task, job)
    context = JobContext(job, task, alias, logs, worker_name=worker_name)
    return Attempt(job, task, options, context, time.monotonic())


def perform(attempt: Attempt) -> Settlement | None:
    """Run the attempt's code through the middleware; how it ended (None: given up on meanwhile).

    SystemExit or KeyboardInterrupt raised by a job's code fail the job like
    any error; only a real Ctrl-C in the main thread (eager mode) stops.
    """
    job = attempt.job
    context = attempt.context
    lifecycle.started(job, attempt.task, context.alias)
    try:
        result = installed().run(context)
        settlement = outcomes.completed(
            ensure_json(result, what="the task's return value", max_bytes=get_settings().max_data_bytes)
        )
    except BaseException as error:
        if isinstance(error, KeyboardInterrupt) and threading.current_thread() is threading.main_thread():
            raise
        if isinstance(error, Snooze):
            settlement = outcomes.snoozed(job, attempt.options or TaskOptions(), error)
        elif isinstance(error, RateLimited):
            settlement = outcomes.rate_limited(error)
        elif outage.caused(error, context.alias, job.started_at):
            logger.warning("Job %s (%s): the database went away under it; putting it back.", job.id, job.task)
            settlement = outcomes.interrupted(error)
        else:
            settlement = outcomes.failed(job, attempt.options or TaskOptions(), error)
    finally:
        tidy_connections()
    if context.closed:
        # Timed out, cancelled or given up while it ran: its result is not wanted.
        logger.info("Job %s (%s) returned after its attempt had ended; result ignored.", job.id, job.task)
        return None
    context.close()
    attempt.settlement = settlement
    return settlement


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


class Ending:
    """An attempt's end that did not come from its code: it could not start, timed out, or was lost.

    What the lifecycle writes, like an :class:`Attempt` whose code returned.
    """

    __slots__ = ("job", "options", "settlement", "task")

    def __init__(
        self, job: Job, settlement: Settlement, task: Task | None = None, options: TaskOptions | None = None
    ) -> None:
        self.job = job
        self.settlement: Settlement | None = settlement
        self.task = task
        self.options = options
