"""The worker: claims jobs tag by tag and hands them to its threads.

Kinetik's semantics: tags are served in the order given; whenever a slot is
free the worker asks the first tag for work, then the next, so after every job
it goes back to the first tag that has work. Only when every tag is empty does
it wait (``interval``, or until the next delayed job is due) and send
``queue_empty``. The wait ends early when a running job finishes or a stop is
requested.

Shutdown order (SIGTERM/SIGINT, or :meth:`Worker.stop`): stop claiming; keep
the heartbeat going while running jobs get ``shutdown_timeout`` to finish; put
whatever is still running back in the queue; mark the worker offline. A second
signal skips the wait and exits at once; the leases bring those jobs back.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import threading
import time
from collections.abc import Sequence
from types import FrameType

from django.core.exceptions import ImproperlyConfigured
from django.db import connections
from django.utils import timezone

from ..backends import Backend, WorkerInfo, get_backend
from ..conf import get_settings
from ..middleware import middleware_factories
from ..models import Job
from ..registry import registry
from ..signals import emit, queue_empty
from .execution import Executor
from .heartbeat import Heartbeat
from .pool import ThreadPool

logger = logging.getLogger("django_kinetik.worker")

#: exit status after a second stop signal cut the graceful shutdown short
EXIT_FORCED = 1


def tags_from_environment() -> list[str]:
    """Tags from ``KINETIK_QUEUE="a,b"`` (Kinetik's environment middleware)."""
    return [tag.strip() for tag in os.environ.get("KINETIK_QUEUE", "").split(",") if tag.strip()]


class Worker:
    """One worker process's loop. ``run()`` blocks until the worker stops."""

    def __init__(
        self,
        tags: Sequence[str] | None = None,
        *,
        concurrency: int = 1,
        interval: float | None = None,
        burst: bool = False,
        max_jobs: int | None = None,
        shutdown_timeout: float | None = None,
        backend: Backend | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, not {concurrency}")
        if max_jobs is not None and max_jobs < 1:
            raise ValueError(f"max_jobs must be at least 1, not {max_jobs}")
        settings = get_settings()
        self.tags = list(tags or tags_from_environment() or registry.tags())
        self.concurrency = concurrency
        self.interval = settings.interval if interval is None else interval
        self.burst = burst
        self.max_jobs = max_jobs
        self.shutdown_timeout = settings.shutdown_timeout if shutdown_timeout is None else shutdown_timeout
        self.lease = settings.lease
        self.backend = backend or get_backend()
        self.name = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.worker_id: int | None = None
        self.jobs_done = 0
        self.jobs_claimed = 0

        self._alias = settings.database
        self._middleware = middleware_factories(settings.middleware)
        self._running = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._forced = threading.Event()
        self._paused: set[str] = set()
        self._paused_checked = 0.0
        self._next_due: float = 0.0
        self._idle = False

    # -- control -----------------------------------------------------------

    def stop(self, *, force: bool = False) -> None:
        """Ask the worker to stop (thread-safe); ``force`` skips the graceful wait."""
        if force:
            self._forced.set()
        self._stopping.set()
        self._wake.set()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # Only set flags here: the main loop does the work.
        self.stop(force=self._stopping.is_set())

    def _install_signal_handlers(self) -> dict[int, object]:
        if threading.current_thread() is not threading.main_thread():
            return {}
        previous: dict[int, object] = {}
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, self._on_signal)
        return previous

    # -- the loop ----------------------------------------------------------

    def run(self) -> int:
        """Serve jobs until stopped (or drained, with ``burst``); return an exit status."""
        tasks = registry.names()
        if not tasks:
            raise ImproperlyConfigured(
                "No kinetik tasks are registered, so this worker has nothing to run. "
                "Define tasks with @kinetik.task in an installed app's tasks.py."
            )
        if not self.tags:
            raise ImproperlyConfigured("The worker has no tags to serve.")
        self.worker_id = self.backend.register_worker(
            WorkerInfo(
                name=self.name, host=socket.gethostname(), pid=os.getpid(), tags=self.tags, concurrency=self.concurrency
            )
        )
        executor = Executor(self.backend, self._alias, self._middleware)
        pool = ThreadPool(self.concurrency, executor.execute, self._job_done, name="kinetik-job")
        heartbeat = Heartbeat(self.backend, self.worker_id, self.lease, lambda: self.jobs_done)
        heartbeat.start()
        previous_handlers = self._install_signal_handlers()
        logger.info(
            "Worker %s serving %s with %d thread(s).",
            self.name,
            ", ".join(self.tags),
            self.concurrency,
        )
        try:
            self._serve(pool, tasks)
            return self._shut_down(pool, heartbeat)
        finally:
            for signum, handler in previous_handlers.items():
                signal.signal(signum, handler)  # type: ignore[arg-type]
            # This thread's connections: a worker run from a thread must not leave one open.
            connections.close_all()

    def _job_done(self, job: Job) -> None:
        with self._lock:
            self._running -= 1
            self.jobs_done += 1
        self._wake.set()

    def _serve(self, pool: ThreadPool, tasks: list[str]) -> None:
        while not self._stopping.is_set():
            # Clear before looking at the state: a wake-up after this point is kept.
            self._wake.clear()
            free = self.concurrency - self._running
            if self.max_jobs is not None:
                free = min(free, self.max_jobs - self.jobs_claimed)
                if free <= 0 and self._running == 0:
                    logger.info("Worker %s ran its %d jobs; stopping.", self.name, self.max_jobs)
                    return
            if free <= 0:
                self._wake.wait(self.interval)
                continue
            self._refresh_paused()
            self._promote_due()
            jobs = self._claim(free, tasks)
            if jobs:
                self._idle = False
                with self._lock:
                    self._running += len(jobs)
                self.jobs_claimed += len(jobs)
                for job in jobs:
                    pool.submit(job)
                continue
            if self._running == 0:
                if not self._idle:
                    self._idle = True
                    emit(queue_empty, self, tags=list(self.tags))
                if self.burst:
                    logger.info("Worker %s found no runnable jobs; burst mode, stopping.", self.name)
                    return
            self._wake.wait(self._idle_wait())

    def _claim(self, free: int, tasks: list[str]) -> list[Job]:
        claimed: list[Job] = []
        for tag in self.tags:
            if tag in self._paused:
                continue
            claimed += self.backend.claim(self.worker_id, tag, tasks, free - len(claimed), self.lease)  # type: ignore[arg-type]
            if len(claimed) >= free:
                break
        return claimed

    def _refresh_paused(self) -> None:
        now = time.monotonic()
        if now - self._paused_checked >= self.interval:
            self._paused = self.backend.paused_tags()
            self._paused_checked = now

    def _promote_due(self) -> None:
        now = time.monotonic()
        if now < self._next_due:
            return
        due = self.backend.promote_due(self.tags)
        # Look again when the next delayed job is due, and at least every
        # interval, since another process may create one due sooner.
        wait = self.interval
        if due is not None:
            wait = min(wait, max(0.0, (due - timezone.now()).total_seconds()))
        self._next_due = now + wait

    def _idle_wait(self) -> float:
        return max(0.0, min(self.interval, self._next_due - time.monotonic()))

    # -- stopping ----------------------------------------------------------

    def _shut_down(self, pool: ThreadPool, heartbeat: Heartbeat) -> int:
        deadline = time.monotonic() + self.shutdown_timeout
        if self._running:
            logger.info(
                "Worker %s waiting up to %gs for %d running job(s).", self.name, self.shutdown_timeout, self._running
            )
        while self._running and not self._forced.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._wake.wait(min(left, 0.5))
            self._wake.clear()
        if self._forced.is_set():
            logger.warning("Worker %s stopping at once; leases will bring back running jobs.", self.name)
            return EXIT_FORCED
        heartbeat.stop()
        # Threads still inside a job exit (closing their connections) once it
        # returns; its outcome will be discarded, since the job is put back.
        pool.stop(timeout=0 if self._running else 5)
        if self._running:
            requeued = self.backend.requeue_unfinished(self.worker_id)  # type: ignore[arg-type]
            logger.warning(
                "Worker %s put %d unfinished job(s) back in the queue: %s", self.name, len(requeued), requeued
            )
        self.backend.retire_worker(self.worker_id, self.jobs_done)  # type: ignore[arg-type]
        logger.info("Worker %s stopped after %d job(s).", self.name, self.jobs_done)
        return 0
