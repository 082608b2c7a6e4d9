"""A fixed set of daemon threads that execute claimed jobs.

Daemon threads, not ``concurrent.futures``: a worker that gives up on a job at
shutdown must be able to exit while that job's code is still running (its
lease brings the job back), and executor threads are joined at exit.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

from django.db import connections

from ..models import Job

logger = logging.getLogger("django_kinetik.worker")


class ThreadPool:
    """``size`` threads running ``handle(job)``; ``on_done(job)`` after each job."""

    def __init__(self, size: int, handle: Callable[[Job], object], on_done: Callable[[Job], None], name: str) -> None:
        self._queue: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._handle = handle
        self._on_done = on_done
        self._threads = [
            threading.Thread(target=self._serve, name=f"{name}-{index}", daemon=True) for index in range(size)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, job: Job) -> None:
        self._queue.put(job)

    def _serve(self) -> None:
        try:
            while (job := self._queue.get()) is not None:
                try:
                    self._handle(job)
                except Exception:
                    logger.exception(
                        "Job %s (%s) could not be settled; its lease will bring it back.", job.pk, job.task
                    )
                finally:
                    self._on_done(job)
        finally:
            connections.close_all()

    def stop(self, timeout: float | None = None) -> None:
        """Let threads finish their current job and exit; wait up to ``timeout``."""
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout)
