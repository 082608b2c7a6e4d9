"""``remove_on_complete``: completed jobs deleted a few seconds after their end, by a worker.

The grace lets a ``job.wait()`` woken by the end still read the result. The
lifecycle adds a job when its completion is written; a worker's purge
(``worker/purge.py``) deletes those whose grace has passed. Outside a worker
(eager mode, a web process) nothing is kept.
"""

from __future__ import annotations

import threading
import time
from collections import deque

#: seconds a completed remove_on_complete job stays, for waiters to read its result
REMOVE_GRACE = 5.0


class Removals:
    """Completed ``remove_on_complete`` jobs, deleted by a worker's purge once the grace has passed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._due: deque[tuple[float, int]] = deque()
        #: only a worker deletes them: elsewhere (eager mode, a web process) nothing is kept
        self.enabled = False

    def add(self, job_id: int) -> None:
        if self.enabled:
            with self._lock:
                self._due.append((time.monotonic() + REMOVE_GRACE, job_id))

    def next_due(self) -> float:
        """When the first one's grace is over (``time.monotonic()``; infinity: none waits)."""
        with self._lock:
            return self._due[0][0] if self._due else float("inf")

    def ready(self, now: float) -> list[int]:
        """Ids whose grace has passed (taken off the list)."""
        ready = []
        with self._lock:
            while self._due and self._due[0][0] <= now:
                ready.append(self._due.popleft()[1])
        return ready


removals = Removals()
