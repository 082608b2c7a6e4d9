"""Keeping the queue honest: what every worker does between its claims.

Runs that pass their timeout are settled as timed out; jobs whose worker
stopped renewing their lease are taken back (ghost runs) and silent workers
marked lost; a worker whose own leases could not be renewed stops claiming
(fencing); delayed jobs are promoted when due and paused tags re-read; and the
periodic passes run: Redis reconcile, purge, schedules, the sweep for jobs
waiting on others, the limits' tidy-up, the memory check. A database that goes
away is waited out with backoff.

These work on the worker's own state, so they are a mixin of
:class:`~.loop.Worker`, which calls them from its loop.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from typing import TYPE_CHECKING

from django.db import connections
from django.utils import timezone

from .. import dependencies
from ..backends import Backend
from ..backends.limited import LimitedClaims
from ..models import Status
from .execution import Executor, RunningJob
from .heartbeat import Heartbeat
from .memory import resident_memory
from .pool import ThreadPool
from .purge import Purger
from .redisfeed import RedisFeed
from .scheduler import Scheduler

logger = logging.getLogger("django_kinetik.worker")

#: seconds between looks for waiting jobs nobody moved on, and for stale rate windows
SWEEP_EVERY = 30.0
#: a supervised child ended itself to kill a timed-out job's code
EXIT_REPLACE = 3
#: a supervised child could not renew its leases and ended itself
EXIT_FENCED = 4


class Upkeep:
    """The worker's upkeep; the attributes are the worker's (``loop.Worker.__init__``)."""

    name: str
    tags: list[str]
    interval: float
    lease: float
    supervised: bool
    max_memory: int | None
    worker_id: int | None
    jobs_done: int
    jobs_claimed: int
    backend: Backend
    feed: RedisFeed | None
    _alias: str
    _lock: threading.Lock
    _running: set[RunningJob]
    _paused: set[str]
    _stopping: threading.Event
    _fenced: bool
    _recycle_reason: str
    _database_failures: int
    _purger: Purger
    _scheduler: Scheduler
    _limited: LimitedClaims | None
    _next_due: float
    _next_paused_check: float
    _next_recovery: float
    _recovery_every: float
    _next_memory_check: float
    _next_sweep: float
    _next_limits_tidy: float

    if TYPE_CHECKING:

        def _free_slots(self) -> int: ...
        def _running_ids(self) -> list[int]: ...
        def _exit_now(self, heartbeat: Heartbeat, status: int, reason: str) -> None: ...

    def _refresh_paused(self) -> bool:
        """Re-read paused tags when due; True if they changed."""
        now = time.monotonic()
        if now < self._next_paused_check:
            return False
        paused = self.backend.paused_tags()
        changed = paused != self._paused
        self._paused = paused
        self._next_paused_check = now + self.interval
        return changed

    def _maintain(self, executor: Executor) -> bool:
        """Upkeep that is due; True if it may have made jobs claimable."""
        now = time.monotonic()
        changed = False
        if now >= self._next_due and self._free_slots() > 0:
            changed = True
            due, promoted = self.backend.promote_due(self.tags)
            if self.feed is not None:
                self.feed.push(promoted)
            # Look again when the next delayed job is due, and at least every
            # interval, since another process may create one due sooner.
            wait = self.interval
            if due is not None:
                wait = min(wait, max(0.0, (due - timezone.now()).total_seconds()))
            self._next_due = now + wait
        if now >= self._next_recovery:
            changed = self._recover_lost_runs(executor) or changed
            self._next_recovery = now + self._recovery_every
        if self.feed is not None:
            changed = self.feed.maintain(self.interval) or changed
        self._purger.maintain(now)
        changed = bool(self._scheduler.maintain(now)) or changed
        if now >= self._next_sweep:
            # The safety net for jobs waiting on others: a look that a crash skipped.
            self._next_sweep = now + SWEEP_EVERY * random.uniform(0.8, 1.2)
            changed = bool(dependencies.sweep(self._alias)) or changed
        if self._limited is not None and now >= self._next_limits_tidy:
            self._next_limits_tidy = now + SWEEP_EVERY
            self._limited.tidy()
        # Measured after jobs ran (at most once a second): a process that starts
        # above the limit still runs a job per life instead of recycling forever.
        if self.max_memory and self.jobs_claimed and now >= self._next_memory_check:
            self._next_memory_check = now + 1.0
            used = resident_memory()
            if used > self.max_memory and not self._recycle_reason:
                self._recycle_reason = f"memory {used // 2**20} MiB passed --max-memory {self.max_memory // 2**20} MiB"
                logger.warning(
                    "Worker %s: %s; finishing running jobs, then recycling.", self.name, self._recycle_reason
                )
        return changed

    def _recover_lost_runs(self, executor: Executor) -> bool:
        """Take back jobs whose worker stopped renewing their lease; True if any came back."""
        mine = set(self._running_ids())
        recovered = False
        for job in self.backend.expired_leases(limit=100):
            if job.worker_id == self.worker_id and job.pk in mine:
                continue  # our own heartbeat is late, not lost
            settlement = executor.lose(job)
            if settlement is not None:
                recovered = True
                if settlement.status == Status.QUEUED and self.feed is not None and job.limit_key is None:
                    self.feed.push([(job.pk, job.tag, job.priority)])
        self.backend.mark_lost_workers(silent_for=self.lease)
        return recovered

    def _enforce_timeouts(self, executor: Executor, pool: ThreadPool[RunningJob], heartbeat: Heartbeat) -> None:
        now = time.monotonic()
        with self._lock:
            expired = [r for r in self._running if r.deadline is not None and r.deadline <= now]
            for running in expired:
                self._running.discard(running)
                self.jobs_done += 1
        if not expired:
            return
        for running in expired:
            if not self.supervised:
                pool.abandon(running)  # its thread cannot be killed; a new one takes the slot
            executor.time_out(running)
            if self._limited is not None:
                self._limited.job_ended(running.job.task)
        if self.supervised:
            # Only ending the process stops the timed-out code for sure.
            self._exit_now(heartbeat, EXIT_REPLACE, "a job timed out; replacing this process to kill it")
        logger.warning(
            "Worker %s: %d job(s) timed out; %d thread(s) still run timed-out code (use --processes for a hard kill).",
            self.name,
            len(expired),
            pool.runaways,
        )

    def _check_fence(self, heartbeat: Heartbeat) -> None:
        """Stop taking work when our leases may already have been taken back."""
        silent = heartbeat.silent_for()
        fenced = silent > self.lease * 0.75
        if fenced and not self._fenced:
            logger.error(
                "Worker %s has not renewed its leases for %.1fs; it stops claiming until it can.", self.name, silent
            )
            if self.supervised:
                self._exit_now(heartbeat, EXIT_FENCED, "leases could not be renewed")
        elif self._fenced and not fenced:
            logger.warning("Worker %s renews its leases again; claiming resumes.", self.name)
        self._fenced = fenced

    def _database_trouble(self, error: Exception) -> None:
        self._database_failures += 1
        pause = min(0.1 * 2 ** min(self._database_failures, 10), 5.0)
        if self._database_failures == 1 or self._database_failures % 20 == 0:
            logger.warning(
                "Worker %s cannot reach the database (%s: %s); retrying in %.1fs.",
                self.name,
                type(error).__name__,
                str(error).strip().splitlines()[0] if str(error) else "",
                pause,
            )
        connections.close_all()
        self._stopping.wait(pause)
