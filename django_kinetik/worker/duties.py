"""What a worker does besides running jobs: one small object per periodic duty.

Each duty knows when it is next due (``next_at``, in ``time.monotonic()``
seconds) and does its work in ``run(now)``, returning True if that may have
made jobs claimable (the loop then looks for work at once). ``now`` is passed
in, so a test can drive a duty without sleeping. The purge and the periodic
tasks' schedules are duties too (``purge.py``, ``scheduler.py``), and so is the
Redis fast path's reconcile (``redisfeed.py``).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from typing import Protocol

from django.utils import timezone

from .. import lifecycle, outcomes
from ..backends.base import DATABASE_ERRORS, Backend
from ..backends.limited import LimitedClaims
from ..execution import Ending
from ..models import Job
from ..registry import registry
from .memory import resident_memory

logger = logging.getLogger("django_kinetik.worker")

#: seconds between looks for waiting jobs nobody moved on, and for stale rate windows
SWEEP_EVERY = 30.0
#: seconds before a duty that raised is tried again
RETRY_AFTER_ERROR = 5.0


class Duty(Protocol):
    @property
    def next_at(self) -> float:
        """When the duty is next due (``time.monotonic()``)."""
        ...

    def run(self, now: float) -> bool:
        """Do what is due; True if that may have made jobs claimable."""
        ...


class Upkeep:
    """A worker's duties, each run when due. One that raises (a bug, bad data in a
    schedule or a delay) is logged with its cause and tried again later: upkeep
    must never take the running jobs down. Database errors go up to the loop,
    which waits the database out."""

    def __init__(self, duties: list[Duty], worker_name: str) -> None:
        self.duties = duties
        self.worker_name = worker_name

    def run(self, now: float) -> bool:
        """Run the duties that are due; True if one may have made jobs claimable."""
        changed = False
        for duty in self.duties:
            if now < duty.next_at:
                continue
            try:
                changed = duty.run(now) or changed
            except DATABASE_ERRORS:
                raise
            except Exception:
                logger.exception("Worker %s: %s failed; trying again later.", self.worker_name, type(duty).__name__)
                duty.next_at = max(duty.next_at, now + RETRY_AFTER_ERROR)  # type: ignore[misc]
        return changed

    def due_marks(self, room: bool) -> list[float]:
        """When duties are next due (promotion only matters with a free slot)."""
        return [duty.next_at for duty in self.duties if room or not isinstance(duty, Promotion)]


class PausedTags:
    """Re-reads which tags are paused, every interval."""

    def __init__(self, backend: Backend, interval: float) -> None:
        self.backend = backend
        self.interval = interval
        self.next_at = 0.0
        self.paused: set[str] = set()

    def run(self, now: float) -> bool:
        paused = self.backend.paused_tags()
        changed = paused != self.paused
        self.paused = paused
        self.next_at = now + self.interval
        return changed


class Promotion:
    """Queues delayed jobs of the worker's tags when they are due (only while it has a free slot)."""

    def __init__(self, backend: Backend, tags: Sequence[str], interval: float, has_room: Callable[[], bool]) -> None:
        self.backend = backend
        self.tags = list(tags)
        self.interval = interval
        self.has_room = has_room
        self.next_at = 0.0

    def run(self, now: float) -> bool:
        if not self.has_room():
            self.next_at = now + self.interval
            return False
        due, promoted = lifecycle.promote_due(self.backend, self.tags)
        # Look again when the next delayed job is due, and at least every
        # interval, since another process may create one due sooner.
        wait = self.interval
        if due is not None:
            wait = min(wait, max(0.0, (due - timezone.now()).total_seconds()))
        self.next_at = now + wait
        return bool(promoted)


def _lost(job: Job) -> Ending:
    """A run whose worker stopped renewing its lease, as the lifecycle settles it: a ghost."""
    task = registry.find(job.task)
    options = outcomes.run_options(task, job)
    worker_name = job.worker.name if job.worker is not None else ""
    return Ending(job, outcomes.lost(job, options, worker_name), task, options)


class LeaseRecovery:
    """Takes back jobs whose worker stopped renewing their lease (ghost runs); marks silent workers lost."""

    def __init__(self, backend: Backend, worker_id: int, lease: float, mine: Callable[[], list[int]]) -> None:
        self.backend = backend
        self.worker_id = worker_id
        self.lease = lease
        self.mine = mine
        self.every = max(0.2, min(lease / 3, 10.0))
        self.next_at = 0.0

    def run(self, now: float) -> bool:
        self.next_at = now + self.every
        own = set(self.mine())
        lost = [
            _lost(job)
            for job in self.backend.expired_leases(limit=100)
            # Our own heartbeat is late, not lost.
            if not (job.worker_id == self.worker_id and job.pk in own)
        ]
        applied = lifecycle.settle(self.backend, lost, patience=self.lease) if lost else []
        for ghost, ok in zip(lost, applied, strict=True):
            if ok:
                logger.warning("Job %s (%s): %s.", ghost.job.id, ghost.job.task, ghost.settlement.error)  # type: ignore[union-attr]
        self.backend.mark_lost_workers(silent_for=self.lease)
        return any(applied)


class DependencySweep:
    """The safety net for jobs waiting on others: moves on those a crash left behind."""

    def __init__(self, alias: str) -> None:
        self.alias = alias
        self.next_at = 0.0

    def run(self, now: float) -> bool:
        self.next_at = now + SWEEP_EVERY * random.uniform(0.8, 1.2)
        return bool(lifecycle.sweep(self.alias))


class LimitsTidy:
    """Adopts keyless jobs of limited tasks and deletes emptied rate windows."""

    def __init__(self, limited: LimitedClaims) -> None:
        self.limited = limited
        self.next_at = 0.0

    def run(self, now: float) -> bool:
        self.next_at = now + SWEEP_EVERY
        self.limited.tidy()
        return False


class MemoryCheck:
    """Asks the worker to recycle once its memory passes ``--max-memory`` (measured after jobs ran)."""

    def __init__(self, limit: int, ran_jobs: Callable[[], bool], recycle: Callable[[str], None]) -> None:
        self.limit = limit
        self.ran_jobs = ran_jobs
        self.recycle = recycle
        self.next_at = 0.0

    def run(self, now: float) -> bool:
        self.next_at = now + 1.0
        # After jobs ran: a process that starts above the limit still runs a job
        # per life instead of recycling forever.
        if self.ran_jobs():
            used = resident_memory()
            if used > self.limit:
                self.recycle(f"memory {used // 2**20} MiB passed --max-memory {self.limit // 2**20} MiB")
        return False
