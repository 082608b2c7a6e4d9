"""The base of a worker's background threads: a daemon with a stop flag that tidies its connections.

Each thread a worker starts besides its job threads (heartbeat, wake-up
listeners, the Redis blocking pop) holds its own database or Redis connection
and must neither keep the process alive nor leave a connection open when it
ends (a worker run in a test's thread would otherwise hold the test database
open). ``stop()`` never waits: a stopping worker's shutdown timeout must not
grow by a thread's poll; ``join()`` waits when the caller wants to.
"""

from __future__ import annotations

import abc
import logging
import threading

from django.db import connections

logger = logging.getLogger("django_kinetik.worker")


class BackgroundThread(abc.ABC):
    """``run()`` in a daemon thread named ``name``, until :meth:`stop` (check :attr:`stopping`)."""

    name = "kinetik-thread"

    def __init__(self) -> None:
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._main, name=self.name, daemon=True)

    @abc.abstractmethod
    def run(self) -> None:
        """The thread's work; return once :attr:`stopping` is set (or earlier)."""

    def interrupt(self) -> None:
        """Cut a blocking wait of :meth:`run` short after a stop (optional)."""
        return None

    @property
    def stopping(self) -> threading.Event:
        return self._stopping

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to end, without waiting for it."""
        self._stopping.set()
        self.interrupt()

    def join(self, timeout: float | None = None) -> None:
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def _main(self) -> None:
        try:
            self.run()
        except Exception:
            logger.exception("The %s thread stopped on an unexpected error.", self.name)
        finally:
            connections.close_all()


class DatabaseTrouble:
    """A thread's database went away: back off (0.2 s doubling up to 5 s), log now and then, reconnect."""

    def __init__(self, name: str, stopping: threading.Event) -> None:
        self.name = name
        self.stopping = stopping
        self.failures = 0

    def failed(self, error: Exception) -> None:
        self.failures += 1
        pause = min(0.1 * 2 ** min(self.failures, 10), 5.0)
        if self.failures == 1 or self.failures % 20 == 0:
            first_line = str(error).strip().splitlines()[0] if str(error) else ""
            logger.warning(
                "Worker %s cannot reach the database (%s: %s); retrying in %.1fs.",
                self.name,
                type(error).__name__,
                first_line,
                pause,
            )
        connections.close_all()
        self.stopping.wait(pause)

    def recovered(self) -> None:
        if self.failures:
            logger.warning("Worker %s reached the database again.", self.name)
            self.failures = 0
