"""The worker's side of the Redis fast path: where its next job ids come from.

The main loop asks :meth:`RedisFeed.take` for up to its free slots' worth of
ids before it claims from the database, and confirms them there. When the
loop has nothing to do it marks the feed ``hungry``; a thread then blocks in
BZPOPMIN over the worker's tags and wakes the loop the moment an id is pushed
(the enqueue-to-start latency of the fast path).

Redis trouble never stops the worker: the feed backs off (0.2 s → 5 s) and
the loop claims from the database meanwhile. When Redis comes back empty
(flushed, restarted: its "alive" marker is gone) or the database claim finds
jobs Redis did not have, the feed reconciles: one worker at a time pushes the
queued jobs back.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence

from ..fastpath import queue
from ..fastpath.connection import follow_the_master, key, queue_key, redis_errors
from .threads import BackgroundThread

logger = logging.getLogger("django_kinetik.worker")

#: the blocking pop returns at least this often, to notice a stop or new tags
_BLOCK_SECONDS = 1.0
#: a periodic reconcile even when all looks well: ids lost with a worker that died holding them
_RECONCILE_EVERY = 60.0
#: asked-for reconciles (the database had jobs Redis did not) at most this often
_RECONCILE_SPACING = 2.0


class RedisFeed(BackgroundThread):
    """Job ids from Redis for one worker, with a blocking pop while it is idle."""

    name = "kinetik-redis"

    def __init__(self, alias: str, tags: Callable[[], Sequence[str]], wake: threading.Event) -> None:
        super().__init__()
        self.alias = alias
        self._tags = tags
        self._wake = wake
        self.hungry = threading.Event()
        #: written to end the blocking pop at once (a key of this feed's own)
        self._interrupt = key("interrupt", f"{os.getpid()}-{id(self)}")
        #: what the blocking pop took and the loop has not yet: (queue key, id, score)
        self._handed: list[tuple[bytes, int, float]] = []
        self._lock = threading.Lock()
        self._failures = 0
        self._down_until = 0.0
        self._reconcile_wanted = True  # a starting worker checks Redis holds the queue
        self._next_reconcile = 0.0
        self._last_reconcile = -_RECONCILE_SPACING
        self._next_state_check = 0.0

    def stop(self) -> None:
        """Stop the blocking pop; ids it took but nobody claimed go back to Redis.

        Does not wait for the thread (a daemon, possibly inside a one-second
        BZPOPMIN): a stopping worker's shutdown timeout must not grow by it.
        An id it pops after this is put back by the thread itself.
        """
        with self._lock:
            self.stopping.set()
            left, self._handed = self._handed, []
        self.hungry.set()
        if self.usable:
            try:
                queue.interrupt_wait(self._interrupt)  # a stopping worker does not wait out the pop
            except redis_errors():
                pass
        if left and self.usable:
            queue.push_quietly(self._entries([job_id for _, job_id, _ in left]))

    # -- health ------------------------------------------------------------

    @property
    def usable(self) -> bool:
        """False while backing off after a Redis error (the loop claims from the database)."""
        return time.monotonic() >= self._down_until

    def _trouble(self, error: BaseException) -> None:
        self._failures += 1
        pause = min(0.2 * 2 ** min(self._failures - 1, 5), 5.0)
        self._down_until = time.monotonic() + pause
        self._reconcile_wanted = True  # whatever Redis comes back with, check it holds the queue
        if self._failures == 1 or self._failures % 20 == 0:
            logger.warning(
                "Redis is unavailable (%s: %s); claiming from the database, retrying Redis in %.1fs.",
                type(error).__name__,
                error,
                pause,
            )

    def _recovered(self) -> None:
        if self._failures:
            logger.warning("Redis is back; the fast path resumes.")
        self._failures = 0

    # -- ids for the main loop ---------------------------------------------

    def take(self, count: int) -> list[int]:
        """Up to ``count`` ids: those the blocking pop got, else popped now.

        Ids from the blocking pop go out alone, without a pop for more: that
        round trip would delay the job that just woke an idle worker.
        """
        self.hungry.clear()
        with self._lock:
            handed, self._handed = self._handed[:count], self._handed[count:]
        ids = self._still_served(handed)
        if not ids and self.usable:
            try:
                ids = queue.pop(self._tags(), count)
                self._recovered()
            except redis_errors() as error:
                self._trouble(error)
        return ids

    def _still_served(self, handed: list[tuple[bytes, int, float]]) -> list[int]:
        """The ids of ``handed`` whose tag is still served; the others (a tag paused meanwhile) go back."""
        if not handed:
            return []
        served = {queue_key(tag).encode() for tag in self._tags()}
        ids = []
        for popped in handed:
            if popped[0] in served:
                ids.append(popped[1])
            else:
                try:
                    queue.unpop(popped)
                except redis_errors() as error:
                    self._trouble(error)  # still queued in the database: the reconciler pushes it again
        return ids

    def _entries(self, ids: Sequence[int]) -> list[queue.Entry]:
        return queue.entries_of(self.alias, ids)

    def database_had_more(self) -> None:
        """The database claim found jobs Redis did not offer: push the backlog back."""
        self._reconcile_wanted = True

    def maintain(self, interval: float) -> bool:
        """Reconcile when Redis lost its state or missed jobs; True if ids were pushed."""
        now = time.monotonic()
        if not self.usable:
            return False
        try:
            lost = False
            if now >= self._next_state_check:
                self._next_state_check = now + interval
                follow_the_master()
                lost = queue.lost_state()
            asked = self._reconcile_wanted and now >= self._last_reconcile + _RECONCILE_SPACING
            if not (lost or asked or now >= self._next_reconcile):
                return False
            self._reconcile_wanted = False
            self._last_reconcile = now
            self._next_reconcile = now + _RECONCILE_EVERY
            pushed = queue.reconcile(self.alias, list(self._tags()))
            self._recovered()
        except redis_errors() as error:
            self._trouble(error)
            return False
        if pushed:
            logger.info("Pushed %d queued job(s) back into Redis.", pushed)
        return bool(pushed)

    # -- the blocking pop --------------------------------------------------

    def run(self) -> None:
        while not self.stopping.is_set():
            if not self.hungry.wait(0.5) or self.stopping.is_set():
                continue
            if not self.usable:
                self.stopping.wait(max(0.0, self._down_until - time.monotonic()))
                continue
            tags = self._tags()
            if not tags:
                self.stopping.wait(_BLOCK_SECONDS)
                continue
            try:
                popped = queue.wait_pop(tags, _BLOCK_SECONDS, interrupt=self._interrupt)
                if popped is not None and not self.hungry.is_set():
                    # The loop found work meanwhile and will pop for itself when
                    # it has room; holding the id here could only delay it.
                    queue.unpop(popped)
                    popped = None
                self._recovered()
            except Exception as error:
                if self.stopping.is_set():
                    return  # its client may be closed under it; nothing of ours is lost
                # Any error, not only Redis's: a dead thread would end the wake-ups.
                self._trouble(error)
                continue
            if popped is not None:
                with self._lock:
                    stopped = self.stopping.is_set()
                    if not stopped:
                        self._handed.append(popped)
                if stopped:
                    try:
                        queue.push_quietly(self._entries([popped[1]]))
                    except Exception:
                        pass  # still queued in the database: the reconciler pushes it again
                    return
                self.hungry.clear()
                self._wake.set()
