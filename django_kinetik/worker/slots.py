"""The worker's slots: the attempts its job threads run, and those whose code has returned.

The loop's thread adds and takes back attempts; job threads hand back the ones
that returned (:meth:`returned`); the heartbeat reads which jobs are here
(:meth:`ids`) from its own thread. A dict keyed by job id under one lock.
"""

from __future__ import annotations

import threading
from collections import deque

from ..execution import Attempt


class Slots:
    """Up to ``size`` attempts running at once."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._running: dict[int, Attempt] = {}
        self._lock = threading.Lock()
        #: attempts whose code returned, handed back by job threads (a deque is thread-safe)
        self._returned: deque[Attempt] = deque()
        #: the earliest deadline of a running attempt (None: none has one)
        self.next_deadline: float | None = None

    def __len__(self) -> int:
        return len(self._running)

    @property
    def free(self) -> int:
        return self.size - len(self._running)

    @property
    def busy(self) -> bool:
        """Attempts running, or returned and not taken back yet."""
        return bool(self._running or self._returned)

    def add(self, attempt: Attempt) -> None:
        with self._lock:
            self._running[attempt.job.id] = attempt
        deadline = attempt.deadline
        if deadline is not None and (self.next_deadline is None or deadline < self.next_deadline):
            self.next_deadline = deadline

    def running(self) -> list[Attempt]:
        """The attempts whose code runs now (from any thread)."""
        with self._lock:
            return list(self._running.values())

    def stopping(self) -> int:
        """Slots held by code told to stop (its job cancelled) that has not returned yet."""
        return sum(1 for attempt in self.running() if attempt.stopping_since is not None)

    def cut_short(self, attempt: Attempt, deadline: float) -> None:
        """Bring ``attempt``'s deadline forward to ``deadline`` (it is then stopped as past it)."""
        if attempt.deadline is None or deadline < attempt.deadline:
            attempt.deadline = deadline
        if self.next_deadline is None or deadline < self.next_deadline:
            self.next_deadline = deadline

    def returned(self, attempt: Attempt) -> None:
        """Called by a job thread: the attempt's code has returned."""
        self._returned.append(attempt)

    def take_returned(self) -> None:
        """Free the slots of the attempts that returned (unless they were timed out meanwhile)."""
        returned = self._returned
        with self._lock:
            while returned:
                attempt = returned.popleft()
                if self._running.get(attempt.job.id) is attempt:
                    del self._running[attempt.job.id]

    def expired(self, now: float) -> list[Attempt]:
        """Take out the attempts past their deadline."""
        if self.next_deadline is None or now < self.next_deadline:
            return []
        with self._lock:
            expired = [a for a in self._running.values() if a.deadline is not None and a.deadline <= now]
            for attempt in expired:
                del self._running[attempt.job.id]
            deadlines = [a.deadline for a in self._running.values() if a.deadline is not None]
        self.next_deadline = min(deadlines) if deadlines else None
        return expired

    def ids(self) -> list[int]:
        """The jobs here: running, or returned and not taken back yet (from any thread)."""
        with self._lock:
            ids = list(self._running)
        return ids + [attempt.job.id for attempt in list(self._returned)]

    def close_all(self) -> bool:
        """Mark every running attempt over (its late logs and result are ignored); whether there was one."""
        with self._lock:
            for attempt in self._running.values():
                attempt.context.close()
            return bool(self._running)
