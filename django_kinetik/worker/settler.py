"""The settler: writes the ends of attempts in batches, off the job threads.

A job thread hands over how its attempt ended and is free for the next job at
once. The settler thread takes everything waiting (up to ``max_batch``) and
records it in one write: one statement on PostgreSQL for the whole batch (job
rows and their JobRun rows). The jobs' log lines are written here too, before
each batch and at least every ``logwriter.FLUSH_EVERY`` seconds. Under light load a batch is a single job written
immediately; under heavy load batches grow by themselves, so round trips per
job fall as throughput rises. Nothing is lost if the worker dies with items
waiting here: their jobs are still active and leased, and come back as ghosts.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

from django.db import connections

from ..backends.base import Backend, Settlement
from .execution import RunningJob, jobs_ended, ride_out
from .logwriter import FLUSH_EVERY, LogWriter

logger = logging.getLogger("django_kinetik.worker")

Done = Callable[[RunningJob, Settlement, bool], None]


class Settler:
    """Batches ``(running job, settlement)`` pairs into ``backend.settle_many`` writes."""

    def __init__(
        self, backend: Backend, lease: float, done: Done, max_batch: int = 500, logs: LogWriter | None = None
    ) -> None:
        self.backend = backend
        self.logs = logs
        self.lease = lease
        self.max_batch = max_batch
        self._done = done
        self._queue: queue.SimpleQueue[tuple[RunningJob, Settlement] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="kinetik-settler", daemon=True)
        self._thread.start()

    def submit(self, running: RunningJob, settlement: Settlement) -> None:
        self._queue.put((running, settlement))

    def _next(self) -> tuple[RunningJob, Settlement] | None:
        """The next item, writing waiting log lines whenever the queue is quiet for a moment."""
        while True:
            try:
                return self._queue.get(timeout=FLUSH_EVERY)
            except queue.Empty:
                if self.logs:
                    self.logs.flush()

    def _run(self) -> None:
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
            connections.close_all()

    def _write(self, batch: list[tuple[RunningJob, Settlement]]) -> None:
        if self.logs:
            self.logs.flush()  # a job's lines are in before its end is
        pairs = [(running.job, settlement) for running, settlement in batch]

        def write(retried: bool) -> list[bool]:
            applied = self.backend.settle_many(pairs)
            if retried:
                # The earlier attempt may have committed before its connection dropped.
                applied = [ok or self.backend.was_settled(job, s) for ok, (job, s) in zip(applied, pairs, strict=True)]
            return applied

        applied = ride_out(write, self.lease, f"{len(batch)} job(s)") or [False] * len(batch)
        # Before the workers hear of the ends: a job waiting for one of these is
        # queued by the time this worker looks for work again.
        ended = [job for (job, settlement), ok in zip(pairs, applied, strict=True) if ok and settlement.ends_job]
        jobs_ended(self.backend, ended)
        for (running, settlement), ok in zip(batch, applied, strict=True):
            try:
                self._done(running, settlement, ok)
            except Exception:
                logger.exception("Error after recording job %s.", running.job.pk)

    def stop(self, timeout: float | None = None) -> None:
        """Write what is waiting, then end the thread."""
        self._queue.put(None)
        self._thread.join(timeout)
