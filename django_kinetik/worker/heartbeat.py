"""The heartbeat: proof of life for the worker and its leases.

It runs in its own thread with its own database connection, so a job that
never yields (a CPU-bound loop, a blocking call) does not stop the worker's
leases from being renewed. It beats three times per lease, so a lease
survives two missed beats; ``silent_for`` tells the worker how long it has
been since a beat got through, so a worker cut off from the database can stop
claiming before others start taking its jobs back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from django.db import connections

from ..backends.base import Backend
from .threads import BackgroundThread

logger = logging.getLogger("django_kinetik.worker")


#: seconds between two tries after a beat failed (at most; never more than a beat)
RETRY_EVERY = 0.5


def beat_every(lease: float) -> float:
    """Seconds between beats: three per lease, at most every 10 s, at least every 0.2 s."""
    return max(0.2, min(lease / 3, 10.0))


class Heartbeat(BackgroundThread):
    """Calls ``backend.heartbeat`` every :func:`beat_every` seconds until stopped."""

    name = "kinetik-heartbeat"

    def __init__(
        self,
        backend: Backend,
        worker_id: int,
        lease: float,
        running: Callable[[], list[int]],
        stats: Callable[[], dict[str, int]],
    ) -> None:
        super().__init__()
        self.backend = backend
        self.worker_id = worker_id
        self.lease = lease
        self.every = beat_every(lease)
        self._running = running
        self._stats = stats
        self._last_success = time.monotonic()

    def silent_for(self) -> float:
        """Seconds since the last beat that reached the database."""
        return time.monotonic() - self._last_success

    def beat(self) -> None:
        sent = time.monotonic()
        self.backend.heartbeat(self.worker_id, self.lease, self._running(), self._stats())
        self._last_success = sent

    def run(self) -> None:
        failures = 0
        retry_every = min(self.every, RETRY_EVERY)
        while not self.stopping.wait(retry_every if failures else self.every):
            try:
                self.beat()
                if failures:
                    logger.warning("Heartbeat got through again after %d failed tries.", failures)
                failures = 0
            except Exception as error:
                failures += 1
                if failures == 1:
                    logger.warning("Heartbeat failed (%s); retrying every %.1fs.", error, retry_every)
                connections.close_all()

    def stop(self) -> None:
        """Stop beating and wait for a beat in flight (the worker retires right after)."""
        super().stop()
        self.join(timeout=self.every + 5)
