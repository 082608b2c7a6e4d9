"""The threads that execute claimed jobs, and what happens to one that will not stop.

Daemon threads, not ``concurrent.futures``: a worker that gives up on a job
(timeout, shutdown) must be able to exit while that job's code still runs, and
executor threads are joined at exit. Python cannot kill a thread, so a thread
whose job timed out is *abandoned*: a fresh thread takes its place at once, and
the abandoned one exits (closing its database connection) whenever its code
finally returns. ``runaways`` counts those still running. Only a process pool
(``--processes``) can kill such code outright.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from django.db import connections

logger = logging.getLogger("django_kinetik.worker")

Item = TypeVar("Item")


class _Slot:
    """One thread of the pool."""

    def __init__(self) -> None:
        self.abandoned = False
        self.thread: threading.Thread | None = None


class ThreadPool(Generic[Item]):
    """``size`` threads calling ``handle(item)`` for each submitted item."""

    def __init__(self, size: int, handle: Callable[[Item], object], name: str) -> None:
        self._queue: queue.SimpleQueue[Item | None] = queue.SimpleQueue()
        self._handle = handle
        self._name = name
        self._lock = threading.Lock()
        self._current: dict[int, _Slot] = {}  # id(item) -> the slot running it
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

    def submit(self, item: Item) -> None:
        self._queue.put(item)

    def abandon(self, item: Item) -> None:
        """Give up on the thread running ``item``; start another in its place."""
        with self._lock:
            slot = self._current.get(id(item))
            if slot is None or slot.abandoned:
                return
            slot.abandoned = True
            self._runaways += 1
            self._live.remove(slot)
            self._spawn()

    def _serve(self, slot: _Slot) -> None:
        try:
            while not slot.abandoned:
                item = self._queue.get()
                if item is None:
                    return
                with self._lock:
                    self._current[id(item)] = slot
                try:
                    self._handle(item)
                except Exception:
                    logger.exception("Unexpected error in a job thread; carrying on.")
                finally:
                    with self._lock:
                        self._current.pop(id(item), None)
            with self._lock:
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
