"""What a worker needs from storage: the contract every backend keeps.

A backend claims runnable jobs for a worker, settles each claimed job with one
write, keeps the worker's leases alive, and puts unfinished jobs back when the
worker stops. The database backend is the reference; the Redis fast path
(a later layer) changes how work is found, never where it is recorded.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..models import FINISHED_STATUSES, Job, Outcome, Status


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

    @property
    def ends_job(self) -> bool:
        """The job is finished (not queued again for another attempt)."""
        return self.status in FINISHED_STATUSES


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
        """The claim's parameters for the runnable condition (see ``sql.py``), as lists."""
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


class Backend(abc.ABC):
    """Storage operations the worker loop is written against."""

    @abc.abstractmethod
    def register_worker(self, info: WorkerInfo) -> int:
        """Record a starting worker; return its id."""

    @abc.abstractmethod
    def retire_worker(self, worker_id: int, stats: dict[str, int]) -> None:
        """Mark a worker offline, with its final ``stats`` (``jobs_done``, ``runaway_threads``)."""

    @abc.abstractmethod
    def claim(self, worker_id: int, tag: str, runnable: Runnable, limit: int, lease: float) -> list[Job]:
        """Atomically take up to ``limit`` queued jobs of ``tag`` that are ``runnable`` here.

        Taken jobs are ``active``, leased to ``worker_id`` for ``lease`` seconds,
        their ``attempts`` counted; returned in priority order. No job is ever
        returned to two callers for the same attempt.
        """

    @abc.abstractmethod
    def claim_ids(self, worker_id: int, ids: Sequence[int], runnable: Runnable, lease: float) -> list[Job]:
        """:meth:`claim` for jobs picked elsewhere (the Redis fast path): those of ``ids`` still queued.

        Ids that are no longer queued (taken, cancelled, deleted) or not
        ``runnable`` here are skipped. Returned in the order of ``ids``.
        """

    @abc.abstractmethod
    def promote_due(self, tags: Sequence[str]) -> tuple[datetime | None, list[tuple[int, str, int]]]:
        """Queue delayed jobs of ``tags`` whose time has come.

        Returns the next due time and the jobs queued now, as (id, tag, priority).
        """

    @abc.abstractmethod
    def settle(self, job: Job, settlement: Settlement) -> bool:
        """Record an attempt's end; False if the job was no longer this attempt's.

        (It was cancelled, or its lease was taken back, while it ran.)
        """

    @abc.abstractmethod
    def settle_many(self, items: Sequence[tuple[Job, Settlement]]) -> list[bool]:
        """:meth:`settle` for a batch, in one write where the database allows; one flag per item."""

    @abc.abstractmethod
    def jobs_ended(self, jobs: Sequence[Job]) -> None:
        """These jobs reached an end (committed): move on the jobs waiting for them (``dependencies.py``).

        A settle may have set ``job.awaited`` (whether any job waits for it) to spare the look.
        """

    @abc.abstractmethod
    def was_settled(self, job: Job, settlement: Settlement) -> bool:
        """Whether ``settlement`` for this attempt is already recorded.

        After a settle whose connection dropped, this tells "it committed"
        from "it never happened".
        """

    @abc.abstractmethod
    def heartbeat(self, worker_id: int, lease: float, running: Sequence[int], stats: dict[str, int]) -> None:
        """Say the worker is alive and extend the leases of the jobs it is running.

        Only ``running`` jobs are renewed: a job claimed by a statement whose
        answer never arrived (the connection dropped) is not running here, so
        its lease runs out and another worker takes it back. ``stats`` updates
        the worker row (``jobs_done``, ``runaway_threads``).
        """

    @abc.abstractmethod
    def expired_leases(self, limit: int) -> list[Job]:
        """Running jobs whose lease has run out, oldest first."""

    @abc.abstractmethod
    def mark_lost_workers(self, silent_for: float) -> int:
        """Mark workers that have not heart-beaten for ``silent_for`` seconds as lost."""

    @abc.abstractmethod
    def release(self, job: Job) -> bool:
        """Put a claimed job that never started back in the queue, its attempt not counted.

        For a job this worker cannot run after all (its code does not import
        here); False if the job was no longer this claim's.
        """

    @abc.abstractmethod
    def requeue_unfinished(self, worker_id: int) -> list[int]:
        """Put the worker's still-running jobs back in the queue; return their ids."""

    @abc.abstractmethod
    def paused_tags(self) -> set[str]:
        """Tags that are paused right now."""
