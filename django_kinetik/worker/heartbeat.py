"""The heartbeat: proof of life for the worker and its leases.

It runs in its own thread with its own database connection, so a job that
never yields (a CPU-bound loop, a blocking call) does not stop the worker's
leases from being renewed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from django.db import connections

from ..backends.base import Backend

logger = logging.getLogger("django_kinetik.worker")


class Heartbeat:
    """Calls ``backend.heartbeat`` every ``every`` seconds until stopped."""

    def __init__(self, backend: Backend, worker_id: int, lease: float, jobs_done: Callable[[], int]) -> None:
        self.backend = backend
        self.worker_id = worker_id
        self.lease = lease
        # Three beats per lease: a lease survives two missed beats.
        self.every = max(0.5, min(lease / 3, 10.0))
        self._jobs_done = jobs_done
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kinetik-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def beat(self) -> None:
        self.backend.heartbeat(self.worker_id, self.lease, self._jobs_done())

    def _run(self) -> None:
        try:
            while not self._stopped.wait(self.every):
                try:
                    self.beat()
                except Exception:
                    logger.exception("Heartbeat failed; retrying in %.1fs.", self.every)
                    connections.close_all()
        finally:
            connections.close_all()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=self.every + 5)
