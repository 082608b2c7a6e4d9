"""The job threads: each runs one attempt at a time, and one that will not stop is abandoned.

The claim loop hands an attempt to :meth:`Executor.submit`; a free thread
runs it (:func:`~django_kinetik.execution.perform`) and hands it straight back
through ``done``, which wakes the loop to write its end. Two hand-offs a job,
no thread in between.

Daemon threads, not ``concurrent.futures``: a worker that gives up on a job
(timeout, shutdown) must be able to exit while that job's code still runs, and
executor threads are joined at exit. Python cannot kill a thread, so a thread
whose job timed out is *abandoned*: a fresh thread takes its place at once, and
the abandoned one exits (closing its database connection) whenever its code
finally returns. ``runaways`` counts those still running. Only a process
(``--processes``) can be killed outright.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

from django.db import connections

from ..execution import Attempt, perform

logger = logging.getLogger("django_kinetik.worker")


class _Slot:
    """One job thread."""

    __slots__ = ("abandoned", "thread")

    def __init__(self) -> None:
        self.abandoned = False
        self.thread: threading.Thread | None = None


class Executor:
    """``size`` threads running submitted attempts; ``done(attempt)`` is called by the thread after each."""

    def __init__(self, size: int, done: Callable[[Attempt], None], name: str = "kinetik-job") -> None:
        self._queue: queue.SimpleQueue[Attempt | None] = queue.SimpleQueue()
        self._done = done
        self._name = name
        self._lock = threading.Lock()
        self._current: dict[int, _Slot] = {}  # id(attempt) -> the slot running it
        self._live: list[_Slot] = []
        self._runaways = 0
        self._counter = 0
        for _ in range(size):
            self._spawn()

    @property
    def runaways(self) -> int:
        """Abandoned threads still running their job's code."""
        return self._runaways

    def _spawn(self) -> None:
        slot = _Slot()
        self._counter += 1
        slot.thread = threading.Thread(
            target=self._serve, args=(slot,), name=f"{self._name}-{self._counter}", daemon=True
        )
        self._live.append(slot)
        slot.thread.start()

    def submit(self, attempt: Attempt) -> None:
        self._queue.put(attempt)

    def abandon(self, attempt: Attempt) -> None:
        """Give up on the thread running ``attempt`` (its time is up); start another in its place."""
        with self._lock:
            slot = self._current.get(id(attempt))
            if slot is None or slot.abandoned:
                return
            slot.abandoned = True
            self._runaways += 1
            self._live.remove(slot)
            self._spawn()

    def _serve(self, slot: _Slot) -> None:
        get, current, lock = self._queue.get, self._current, self._lock
        try:
            while not slot.abandoned:
                attempt = get()
                if attempt is None:
                    return
                with lock:
                    current[id(attempt)] = slot
                try:
                    perform(attempt)
                except Exception:
                    logger.exception("Unexpected error in a job thread; carrying on.")
                finally:
                    with lock:
                        current.pop(id(attempt), None)
                    self._done(attempt)
            with lock:
                self._runaways -= 1
            logger.info("A runaway job thread finally returned and has exited.")
        finally:
            connections.close_all()

    def stop(self, timeout: float | None = None) -> None:
        """Let live threads finish their current job and exit; wait up to ``timeout``."""
        with self._lock:
            live = list(self._live)
        for _ in live:
            self._queue.put(None)
        for slot in live:
            if slot.thread is not None:
                slot.thread.join(timeout)
