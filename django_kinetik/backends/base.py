"""What kinetik needs from storage: the contract every database backend keeps.

A backend creates jobs, claims runnable ones for a worker, settles each
claimed job with one guarded write, keeps the worker's leases alive, moves
jobs between states with guarded updates that return what they changed, and
puts unfinished jobs back when the worker stops. Only the backends speak SQL;
what follows from a change is :mod:`..lifecycle`'s. The portable
implementation is :class:`~.orm.OrmBackend`; each vendor's backend overrides
the hot path and says what its database can do through the ``supports_*``
flags, so no code outside ``backends/`` asks which database it is on.
"""

from __future__ import annotations

import abc
import logging
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from django.db import DatabaseError, InterfaceError, connections
from django.db.models import Count

from ..models import FINISHED_STATUSES, RUNNABLE_NOW, Job, Outcome, Status
from . import statements

if TYPE_CHECKING:
    from django.db.models import QuerySet

    from ..values.limits import Limit
    from .limited import LimitedClaims

logger = logging.getLogger("django_kinetik.worker")

#: errors that mean "the database is unreachable right now", not "this job is wrong"
DATABASE_ERRORS = (DatabaseError, InterfaceError)

T = TypeVar("T")

#: (id, tag, priority, run_at): all the Redis fast path needs to queue a job
Entry = tuple[int, str, int, datetime]


@dataclass(frozen=True, kw_only=True)
class Settlement:
    """How one attempt ended and what the job becomes because of it."""

    #: the job's next status: completed, failed, timeout, or queued/delayed to retry
    status: Status
    #: how this attempt ended, for its JobRun row
    outcome: Outcome
    finished_at: datetime
    result: Any = None
    error: str = ""
    error_code: str = ""
    #: dotted path of the exception class that ended the attempt (see outcomes.exception_path)
    exception: str = ""
    traceback: str = ""
    #: when a retried job runs next
    run_at: datetime | None = None
    #: settled by another worker because the lease expired: only applies if it
    #: still is expired, and a re-queued job counts a ghost instead of an attempt
    lost: bool = False
    #: False: the attempt does not use one of the job's attempts (interrupted by an outage, snoozed)
    counted: bool = True
    #: the code asked to run later (``kinetik.Snooze``): the job's snoozes count one more
    snoozed: bool = False
    #: a downstream limit (``kinetik.RateLimited``): hold the job's task or limit key until then
    hold_until: datetime | None = None

    @property
    def plain(self) -> bool:
        """An ordinary end, which the vendor backends' batch statements write (others take the ORM's path)."""
        return self.counted and not self.lost and not self.snoozed and self.hold_until is None

    @property
    def ends_job(self) -> bool:
        """The job is finished (not queued again for another attempt)."""
        return self.status in FINISHED_STATUSES


class Written(NamedTuple):
    """What a batch settle wrote: per item, whether it applied, and whether another job waits for it."""

    applied: list[bool]
    #: None when the write could not tell (then the arrows are looked at)
    awaited: list[bool] | None = None
    #: the write itself sent the live feed's "finished" message for the ended jobs
    announced: bool = False


@dataclass(frozen=True)
class Runnable:
    """Which queued jobs a worker may claim.

    Its tasks, by name. A worker that serves a ``django.tasks`` backend also
    runs every job such a backend enqueued (the task is the function's module
    path, imported when the job runs), except the ``excluded`` paths: those it
    failed to import (they stay queued for a worker that has the code) and
    those with limits (taken by the limited claim, ``limited.py``).
    """

    tasks: tuple[str, ...]
    django_tasks: bool = False
    excluded: frozenset[str] = frozenset()

    def params(self) -> list[Any]:
        """The claim's parameters for the runnable condition (see ``statements.py``), as lists."""
        if not self.django_tasks:
            return [list(self.tasks)]
        return [list(self.tasks), ["", *sorted(self.excluded)]]

    def __bool__(self) -> bool:
        return bool(self.tasks) or self.django_tasks


@dataclass(frozen=True, kw_only=True)
class WorkerInfo:
    """What a worker says about itself when it registers."""

    name: str
    host: str
    pid: int
    tags: Sequence[str]
    concurrency: int


def ride_out(write: Callable[[bool], T], patience: float, what: str) -> T | None:
    """Run a settle-like ``write``, riding out a database that is briefly unreachable.

    Retries with backoff for up to ``patience`` seconds (a worker passes its
    lease: after that the jobs' leases run out and another worker takes them
    back, so giving up loses nothing). ``write`` is told whether this is a
    retry: after a dropped connection its earlier attempt may have committed,
    which it must check before concluding that a guarded write found nothing
    to change. Returns None on giving up.
    """
    deadline = time.monotonic() + patience
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


class Backend(abc.ABC):
    """Storage operations, for one Django database alias."""

    #: idle workers can be woken by the database itself (PostgreSQL LISTEN/NOTIFY)
    supports_notify = False
    #: a claim skips rows other claims hold, instead of waiting for them
    supports_skip_locked = False
    #: the partial unique constraint on live jobs' unique_key is enforced (MySQL ignores it)
    supports_partial_unique = True
    #: the planner can estimate a filtered count without counting (PostgreSQL)
    supports_count_estimates = False
    #: a cheap look tells that another connection committed (SQLite's data_version): a local wake-up
    supports_commit_watch = False
    #: finished jobs are counted as they finish (PostgreSQL's triggers, models/counts.py), not per read
    supports_kept_counts = False

    def __init__(self, alias: str) -> None:
        self.alias = alias

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.alias!r}>"

    # -- creating ------------------------------------------------------------

    @abc.abstractmethod
    def insert_jobs(
        self, fields: dict[str, Any], payloads: list[dict[str, Any]], *, limit_keys: list[str] | None, batch_size: int
    ) -> list[Job]:
        """Insert one job per payload sharing ``fields``; all or nothing. Returns them, with ids."""

    @abc.abstractmethod
    def insert_unique(self, job: Job) -> Job | None:
        """Insert ``job`` unless a live job holds its ``unique_key``; return that job instead (None: inserted)."""

    # -- workers -------------------------------------------------------------

    @abc.abstractmethod
    def register_worker(self, info: WorkerInfo) -> int:
        """Record a starting worker; return its id."""

    @abc.abstractmethod
    def retire_worker(self, worker_id: int, stats: dict[str, int]) -> None:
        """Mark a worker offline, with its final ``stats`` (``jobs_done``, ``runaway_threads``)."""

    @abc.abstractmethod
    def heartbeat(self, worker_id: int, lease: float, running: Sequence[int], stats: dict[str, int]) -> None:
        """Say the worker is alive and extend the leases of the jobs it is running.

        Only ``running`` jobs are renewed: a job claimed by a statement whose
        answer never arrived (the connection dropped) is not running here, so
        its lease runs out and another worker takes it back. ``stats`` updates
        the worker row (``jobs_done``, ``runaway_threads``).
        """

    @abc.abstractmethod
    def mark_lost_workers(self, silent_for: float) -> int:
        """Mark workers that have not heart-beaten for ``silent_for`` seconds as lost."""

    @abc.abstractmethod
    def gone_from(self, worker_id: int, ids: Sequence[int]) -> dict[int, str | None]:
        """Which of ``ids``, running on this worker, are no longer its own: id -> status now (None: deleted)."""

    @abc.abstractmethod
    def record_cancelled_run(self, job: Job, worker_id: int, started_at: datetime) -> bool:
        """Record the attempt of ``job`` cancelled while it ran (a ``cancelled`` JobRun); False if it moved on."""

    @abc.abstractmethod
    def paused_tags(self) -> set[str]:
        """Tags that are paused right now."""

    # -- the hot path ----------------------------------------------------------

    @abc.abstractmethod
    def claim(self, worker_id: int, tags: Sequence[str], runnable: Runnable, limit: int, lease: float) -> list[Job]:
        """Atomically take up to ``limit`` queued jobs that are ``runnable`` here, first tag first.

        Taken jobs are ``active``, leased to ``worker_id`` for ``lease`` seconds,
        their ``attempts`` counted; returned in tag order, then priority order.
        A later tag is only reached when the earlier ones have no more jobs. No
        job is ever returned to two callers for the same attempt.
        """

    @abc.abstractmethod
    def claim_ids(self, worker_id: int | None, ids: Sequence[int], runnable: Runnable, lease: float) -> list[Job]:
        """:meth:`claim` for jobs picked elsewhere (the Redis fast path): those of ``ids`` still queued.

        Ids that are no longer queued (taken, cancelled, deleted) or not
        ``runnable`` here are skipped. Returned in the order of ``ids``.
        """

    @abc.abstractmethod
    def settle_many(self, items: Sequence[tuple[Job, Settlement]], *, announce: bool = False) -> Written:
        """Record attempts' ends, each only if the job is still that attempt's (in one write where possible).

        An item does not apply when the job was cancelled, or its lease taken
        back, while it ran. Applied items update the Job objects in place.
        ``announce``: the live feed travels through this database (PostgreSQL
        NOTIFY); the write may send its "finished" message itself (then
        ``Written.announced``).
        """

    @abc.abstractmethod
    def was_settled(self, job: Job, settlement: Settlement) -> bool:
        """Whether ``settlement`` for this attempt is already recorded.

        After a settle whose connection dropped, this tells "it committed"
        from "it never happened".
        """

    @abc.abstractmethod
    def record_progress(self, job_id: int, attempt: int, current: float, total: float, data: Any) -> None:
        """Store a running attempt's progress (ignored once the attempt is over)."""

    @abc.abstractmethod
    def limited_claims(self, limits: dict[str, Limit]) -> LimitedClaims:
        """The claims of tasks with concurrency or rate limits (``limited.py``)."""

    # -- guarded transitions -------------------------------------------------

    @abc.abstractmethod
    def jobs_in(self, ids: Sequence[int]) -> list[Job]:
        """The jobs among ``ids`` that exist, as they are now."""

    @abc.abstractmethod
    def cancel(self, ids: Sequence[int]) -> list[Job]:
        """Cancel the live jobs among ``ids``; return those that were."""

    @abc.abstractmethod
    def retry(self, ids: Sequence[int], *, data: dict[str, Any] | None = None) -> list[Job]:
        """Queue the failed, timed-out and cancelled jobs among ``ids`` with fresh attempts (and new ``data``)."""

    @abc.abstractmethod
    def run_now(self, ids: Sequence[int], statuses: Sequence[str] = RUNNABLE_NOW) -> list[Job]:
        """Queue the jobs among ``ids`` that are delayed or waiting (or in ``statuses``) to run now."""

    @abc.abstractmethod
    def promote_due(self, tags: Sequence[str]) -> tuple[datetime | None, list[Job]]:
        """Queue delayed jobs of ``tags`` whose time has come: (when the next one is due, those queued now)."""

    @abc.abstractmethod
    def expired_leases(self, limit: int) -> list[Job]:
        """Running jobs whose lease has run out, oldest first (with their worker)."""

    @abc.abstractmethod
    def release(self, job: Job, *, waiting: str = "") -> bool:
        """Put a claimed job that never started back in the queue, its attempt not counted.

        For a job this worker cannot run after all (its code does not import
        here); ``waiting`` says why (kept as its error, code ``waiting_for_code``).
        False if the job was no longer this claim's.
        """

    @abc.abstractmethod
    def without_code(self, tags: Sequence[str], known: Sequence[str], limit: int) -> list[tuple[int, str, str]]:
        """Queued kinetik jobs of ``tags`` whose task is not among ``known``, not yet said to wait: (id, task, tag)."""

    @abc.abstractmethod
    def note_waiting(self, ids: Sequence[int], why: str) -> int:
        """Say why these queued jobs wait (their error, code ``waiting_for_code``); how many changed."""

    @abc.abstractmethod
    def requeue_unfinished(self, worker_id: int) -> list[Job]:
        """Put the worker's still-running jobs back in the queue (the attempt recorded as interrupted)."""

    @abc.abstractmethod
    def delete_jobs(self, ids: Sequence[int]) -> int:
        """Delete these jobs with their logs, runs and arrows in one short transaction; how many."""

    @abc.abstractmethod
    def queued_unlimited(self, tag: str, limit: int) -> list[Entry]:
        """The tag's queued jobs without a limit key, in claim order (what the Redis fast path holds)."""

    @abc.abstractmethod
    def runs_of(self, job_id: int) -> list[tuple[Any, ...]]:
        """The job's ended attempts, oldest first: (outcome, started_at, worker_id, worker name, error,
        exception, traceback)."""

    # -- what only some databases can do ---------------------------------------

    def wake_workers(self, tags: set[str]) -> None:
        """Tell idle workers these tags have new work (:attr:`supports_notify`); elsewhere they poll."""
        return None

    def wait_for_settles_of_parents(self, children: Sequence[int]) -> None:
        """Block until no parent of ``children`` is being settled (a batch settle's own look at the arrows
        cannot see arrows made after it began; ``dependencies.py``). Only where settles look that way."""
        return None

    def ping(self) -> None:
        """One round trip; raises if the database does not answer."""
        with connections[self.alias].cursor() as cursor:
            cursor.execute(statements.PING)
            cursor.fetchone()

    @abc.abstractmethod
    def holds(self) -> dict[tuple[str, str], float]:
        """The fleet-wide holds in force: (task, limit key; "" for the whole task) -> until, epoch seconds."""

    def restarted_since(self, moment: datetime) -> bool:
        """Whether the database server started after ``moment`` (False where it cannot tell)."""
        return False

    def commit_counter(self) -> Callable[[], Any] | None:
        """A call on this thread's connection whose value changes when another connection commits
        (:attr:`supports_commit_watch`), else None."""
        return None

    def exclusively(self, name: str) -> AbstractContextManager[bool]:
        """A context whose value says whether this process holds the lock ``name`` (never waits).

        Where the database has no such locks (SQLite, whose writers take turns
        anyway), always True.
        """
        return _always()

    def estimated_count(self, queryset: QuerySet[Any]) -> int | None:
        """The planner's row estimate for ``queryset`` (:attr:`supports_count_estimates`), else None."""
        return None

    def job_counts(self) -> list[tuple[str, str, str, int]]:
        """Exact counts of jobs, as ``(task, tag, status, count)`` rows (the stats and the metrics).

        Here, one grouped count over every job row: it reads the whole table.
        Where :attr:`supports_kept_counts`, finished jobs are not read.
        """
        rows = Job.objects.using(self.alias).order_by().values_list("task", "tag", "status").annotate(n=Count("id"))
        return [(task, tag, status, count) for task, tag, status, count in rows]

    def fold_counts(self) -> int:
        """Tidy the kept counts (:attr:`supports_kept_counts`); the number of rows folded. Here, nothing."""
        return 0


class _always(AbstractContextManager[bool]):
    def __enter__(self) -> bool:
        return True

    def __exit__(self, *exc: object) -> None:
        return None
