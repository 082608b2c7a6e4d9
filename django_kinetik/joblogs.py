"""Job log lines written in batches by the worker, not one INSERT per line.

``job.log()`` in a worker appends the line here and returns at once; the
worker writes what is waiting in one ``bulk_create`` before each batch of
attempt ends (so a job's lines are in before its end is), and at least every
:data:`FLUSH_EVERY` seconds while jobs run (so the admin's live view sees them).

Written on the worker's connection, not the job's, a line also survives the job's code
rolling back its own transaction: a log of what went wrong is most useful
exactly then. If the database is away, lines wait and are written when it is
back; past :data:`MAX_WAITING` the oldest are dropped with a warning (a log
is not a job, and a worker must not run out of memory keeping it).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .backends.base import DATABASE_ERRORS
from .feed import publishing
from .models import JobLog

if TYPE_CHECKING:
    from .context import JobContext

logger = logging.getLogger("django_kinetik.jobs")

#: longest a line waits to be written while its job runs
FLUSH_EVERY = 0.2
#: lines kept while the database cannot be reached
MAX_WAITING = 50_000


class LogWriter:
    """Log lines waiting to be written, shared by a worker's job threads.

    A line's feed event goes out once the line is written (with its id), so
    a job's other events that come after a line wait for it too
    (:meth:`in_turn`): whoever follows a job sees its events in the order its
    code made them.
    """

    def __init__(self, alias: str) -> None:
        self.alias = alias
        self._lock = threading.Lock()
        #: lines with their job's context, and (None, send): events queued behind lines
        self._waiting: list[tuple[JobLog | None, Any]] = []
        #: the jobs with lines (or events) waiting, and those a flush is writing and announcing
        self._jobs: set[int] = set()
        self._announcing: set[int] = set()

    def add(self, line: JobLog, context: JobContext) -> None:
        with self._lock:
            self._waiting.append((line, context))
            self._jobs.add(line.job_id)
            if len(self._waiting) > MAX_WAITING:
                dropped = len(self._waiting) - MAX_WAITING
                del self._waiting[:dropped]
                logger.warning("Dropped %d job log line(s): the database has been unreachable too long.", dropped)

    def __bool__(self) -> bool:
        """True while lines are waiting (an empty writer is falsy: test with ``is None`` to see if there is one)."""
        return bool(self._waiting)

    def in_turn(self, job_id: int, send: Callable[[], None]) -> None:
        """Call ``send`` (which publishes an event of job ``job_id``) after the job's waiting lines are announced.

        At once when none wait; otherwise by the flush that announces them.
        """
        with self._lock:
            if job_id in self._jobs or job_id in self._announcing:
                self._waiting.append((None, send))
                self._jobs.add(job_id)  # the job's next events queue behind this one
                return
        send()

    def flush(self) -> int:
        """Write every waiting line in one insert; return how many (0 if the database is away)."""
        with self._lock:
            batch, self._waiting = self._waiting, []
            self._announcing, self._jobs = self._jobs, set()
        if not batch:
            return 0
        lines = [line for line, _ in batch if line is not None]
        try:
            JobLog.objects.using(self.alias).bulk_create(lines)
        except DATABASE_ERRORS as error:
            logger.warning("Could not write %d job log line(s) (%s); retrying.", len(lines), error)
            with self._lock:
                self._waiting[:0] = batch
                self._jobs |= self._announcing
                self._announcing = set()
            return 0
        for line, then in batch:
            if line is None:
                then()
            else:
                # line.pk is None where the database cannot return ids from a bulk insert (MySQL).
                publishing.logged(then, self.alias, line.pk, line.message, line.data)
        with self._lock:
            self._announcing = set()
        return len(lines)

    def write_now(self, line: JobLog, context: Any) -> None:
        """Outside a worker (eager mode, a test helper): one INSERT, as it comes."""
        line.save(using=self.alias, force_insert=True)
        publishing.logged(context, self.alias, line.pk, line.message, line.data)


def immediate(alias: str) -> LogWriter:
    """A writer for contexts with no worker behind them: each line is written at once."""
    return _Immediate(alias)


class _Immediate(LogWriter):
    def add(self, line: JobLog, context: JobContext) -> None:
        self.write_now(line, context)
