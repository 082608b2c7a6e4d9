"""The settler: writes the ends of attempts in batches, on a connection of its own.

A job thread hands over its attempt the moment its code returns and is free
for the next job at once: the claim loop starts the next job while the settler
writes this one's end, so a claim and a settle run side by side on two
database connections instead of one after the other. The settler takes
everything waiting (up to ``max_batch``) and writes it through the lifecycle
in one statement on PostgreSQL and SQLite (job rows and their JobRun rows).
Under light load a batch is a single job written at once; under heavy load
batches grow by themselves, so round trips per job fall as throughput rises.

The jobs' log lines are written here too, before each batch (a job's lines are
in before its end is) and at least every ``joblogs.FLUSH_EVERY`` seconds. A
database that is briefly away is ridden out for up to a lease. Nothing is lost
if the worker dies with items waiting here: their jobs are still active and
leased, and come back as ghosts.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

from .. import lifecycle
from ..backends.base import Backend
from ..joblogs import FLUSH_EVERY, LogWriter
from ..lifecycle import Ended
from .threads import BackgroundThread

logger = logging.getLogger("django_kinetik.worker")


class Settler(BackgroundThread):
    """Batches attempts' ends into lifecycle writes; ``done(batch)`` after each."""

    name = "kinetik-settler"

    def __init__(
        self, backend: Backend, lease: float, logs: LogWriter, done: Callable[[list[Ended]], None], max_batch: int = 500
    ) -> None:
        super().__init__()
        self.backend = backend
        self.lease = lease
        self.logs = logs
        self.max_batch = max_batch
        self._done = done
        self._queue: queue.SimpleQueue[Ended | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        #: handed over and not yet written: their leases are still ours to renew
        self._pending: dict[int, Ended] = {}

    def submit(self, end: Ended) -> None:
        with self._lock:
            self._pending[id(end)] = end
        self._queue.put(end)

    def pending_ids(self) -> list[int]:
        """The jobs whose ends wait here."""
        with self._lock:
            return [end.job.id for end in self._pending.values()]

    def pending_tasks(self) -> set[str]:
        """The tasks with a job whose end waits here (a concurrency limit waits for it rather than count it)."""
        with self._lock:
            return {end.job.task for end in self._pending.values()}

    def __len__(self) -> int:
        return len(self._pending)

    def _next(self) -> Ended | None:
        """The next end, writing waiting log lines whenever the queue is quiet for a moment."""
        while True:
            try:
                return self._queue.get(timeout=FLUSH_EVERY)
            except queue.Empty:
                if self.logs:
                    self.logs.flush()

    def run(self) -> None:
        try:
            while (first := self._next()) is not None:
                batch = [first]
                stopping = False
                while len(batch) < self.max_batch:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is None:
                        stopping = True
                        break
                    batch.append(item)
                self._write(batch)
                if stopping:
                    return
        finally:
            if self.logs:
                self.logs.flush()

    def _write(self, batch: list[Ended]) -> None:
        if self.logs:
            self.logs.flush()  # a job's lines are in before its end is
        try:
            lifecycle.settle(self.backend, batch, patience=self.lease)
        except Exception:
            logger.exception("Error writing the end of %d job(s); their leases will bring them back.", len(batch))
        try:
            # Before they leave the pending list: a loop that sees nothing pending
            # has seen them counted (and looks for the work they may have queued).
            self._done(batch)
        except Exception:
            logger.exception("Error after recording %d job(s).", len(batch))
        finally:
            with self._lock:
                for end in batch:
                    self._pending.pop(id(end), None)

    def stop(self, timeout: float | None = None) -> None:  # type: ignore[override]
        """Write what is waiting, then end the thread (waits up to ``timeout``)."""
        self._queue.put(None)
        self.join(timeout)
