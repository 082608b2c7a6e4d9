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

from collections.abc import Callable, Sequence
from dataclasses import replace

from ..backends.base import Backend, Runnable
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

    def exclude(self, task: str) -> None:
        """Stop claiming ``task`` (a django.tasks function whose code is not in this process)."""
        self.runnable = replace(self.runnable, excluded=self.runnable.excluded | {task})

    def take(self, free: int, start: Start) -> int:
        """Claim up to ``free`` jobs, starting each; how many were claimed."""
        want = free
        if self.limited is not None:
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
            jobs = self.backend.claim_ids(self.worker_id, ids, self.runnable, self.lease)
            for job in jobs:
                start(job)
            from_redis += len(jobs)
            want -= len(jobs)
        if want > 0 and not from_redis and self.runnable:
            jobs = self.backend.claim(self.worker_id, self.tags(), self.runnable, want, self.lease)
            for job in jobs:
                start(job)
            if jobs and self.feed is not None:
                self.feed.database_had_more()  # push the backlog back into Redis
            want -= len(jobs)
        return free - want
