"""Where a worker's next jobs come from: the limited claim, the Redis fast path, the database.

First what the concurrency and rate limits allow (never more, so limited tasks
cannot crowd out other work beyond their limits; they are never in Redis).
Then, with Redis, ids popped in tag order and confirmed in the database,
which stays the record. Then the database claim: always without Redis; with
it, the fallback when Redis offered nothing runnable (down, flushed, or just
empty). Every job is started the moment its statement returns: a database
error on the next statement must not strand jobs already taken.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace

from ..backends.base import Backend, Runnable, Settlement
from ..backends.limited import LimitedClaims
from ..models import Job
from .redisfeed import RedisFeed

Start = Callable[[Job], None]


class Claims:
    """One worker's claims, up to its free slots."""

    def __init__(
        self,
        backend: Backend,
        lease: float,
        runnable: Runnable,
        limited: LimitedClaims | None,
        tags: Callable[[], Sequence[str]],
        ending: Callable[[], set[str]],
        interval: float = 1.0,
    ) -> None:
        self.backend = backend
        self.lease = lease
        self.runnable = runnable
        self.limited = limited
        self.tags = tags
        self.ending = ending
        self.worker_id = 0
        self.feed: RedisFeed | None = None
        #: time.monotonic() at which a job held back by a limit may start (None: none is)
        self.retry_at: float | None = None
        #: the fleet-wide holds (kinetik.RateLimited): (task, limit key) -> until, epoch seconds
        self.held: dict[tuple[str, str], float] = {}
        #: re-read every interval, before a claim (time.monotonic())
        self.interval = interval
        self._holds_read_at: float | None = None

    def exclude(self, task: str) -> None:
        """Stop claiming ``task`` (a django.tasks function whose code is not in this process)."""
        self.runnable = replace(self.runnable, excluded=self.runnable.excluded | {task})

    def _read_holds(self) -> None:
        """The holds in force, re-read at most every interval; this worker's own notes are kept until they end."""
        now = time.monotonic()
        if self._holds_read_at is not None and now < self._holds_read_at + self.interval:
            return
        self._holds_read_at = now
        held = self.backend.holds()
        epoch = time.time()
        for hold, until in list(self.held.items()):
            if until > max(epoch, held.get(hold, 0.0)):  # noted here before its end was written
                held[hold] = until
        self.held = held

    def note_hold(self, job: Job, settlement: Settlement) -> None:
        """An attempt here ended with ``kinetik.RateLimited``: hold at once, before its end is written."""
        if settlement.hold_until is not None:
            self.held[(job.task, job.limit_key or "")] = settlement.hold_until.timestamp()

    def _runnable_now(self) -> Runnable:
        """What may be claimed now: the tasks held as a whole (not per key) are left out."""
        whole = {task for (task, key) in self.held if not key}
        if not whole:
            return self.runnable
        runnable = self.runnable
        excluded = runnable.excluded | whole if runnable.django_tasks else runnable.excluded
        return replace(runnable, tasks=tuple(task for task in runnable.tasks if task not in whole), excluded=excluded)

    def take(self, free: int, start: Start) -> int:
        """Claim up to ``free`` jobs, starting each; how many were claimed."""
        want = free
        self._read_holds()
        runnable = self._runnable_now()
        if self.limited is not None:
            for (task, key), until in self.held.items():
                self.limited.hold(task, key, until)
            limited = self.limited.claim(self.tags(), want, self.worker_id, self.lease, self.ending())
            self.retry_at = limited.retry_at
            for job in limited.jobs:
                start(job)
            want -= len(limited.jobs)
        from_redis = 0
        while self.feed is not None and want > 0:
            # Stale ids (taken, cancelled, deleted) are skipped by the database: ask again.
            ids = self.feed.take(want)
            if not ids:
                break
            jobs = self.backend.claim_ids(self.worker_id, ids, runnable, self.lease)
            for job in jobs:
                start(job)
            from_redis += len(jobs)
            want -= len(jobs)
        if want > 0 and not from_redis and runnable:
            jobs = self.backend.claim(self.worker_id, self.tags(), runnable, want, self.lease)
            for job in jobs:
                start(job)
            if jobs and self.feed is not None:
                self.feed.database_had_more()  # push the backlog back into Redis
            want -= len(jobs)
        return free - want
