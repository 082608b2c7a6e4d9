"""The worker: claims jobs tag by tag and hands them to its threads.

Kinetik's semantics: tags are served in the order given; whenever a slot is
free the worker asks the first tag for work, then the next, so after every job
it goes back to the first tag that has work. Only when every tag is empty does
it wait (``interval``, or until the next delayed job is due) and send
``queue_empty``. The wait ends early when a running job finishes, a deadline
passes, or a stop is requested.

Jobs of tasks with concurrency or rate limits are claimed first, as far as
the limits allow (``backends/limited.py``). Besides claiming, every worker keeps
the queue honest (``upkeep.py``): it times out runs that pass their limit,
takes back jobs whose worker stopped renewing their lease (ghost runs), and
marks silent workers lost. A database that goes away is waited out with
backoff; nothing is settled twice, since every settle is guarded by the
attempt it belongs to.

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
from dataclasses import replace
from types import FrameType

from django.core.exceptions import ImproperlyConfigured
from django.db import connections

from ..backends import Backend, Settlement, WorkerInfo, get_backend
from ..backends.base import Runnable
from ..backends.limited import LimitedClaims
from ..conf import get_settings
from ..exceptions import TaskNotImportable
from ..fastpath import connection as fastpath
from ..middleware import middleware_factories
from ..models import Job, Status
from ..registry import registry
from ..signals import emit, queue_empty
from ..tasks_backend import configured as tasks_configuration
from ..values.limits import Limit
from ..values.options import TaskOptions
from . import outcomes
from .execution import DATABASE_ERRORS, Executor, RunningJob
from .heartbeat import Heartbeat
from .pool import ThreadPool
from .purge import Purger
from .redisfeed import RedisFeed
from .scheduler import Scheduler
from .settler import Settler
from .supervisor import EXIT_RECYCLE, supervisor_gone
from .upkeep import Upkeep
from .wakeup import PostgresListener

logger = logging.getLogger("django_kinetik.worker")

#: exit status after a second stop signal cut the graceful shutdown short
EXIT_FORCED = 1


def default_tags() -> list[str]:
    """A worker given no tags serves its tasks' tags, then the queues of kinetik's django.tasks backends."""
    return list(dict.fromkeys([*registry.tags(), *tasks_configuration.served_queues()]))


def task_limits() -> dict[str, Limit]:
    """The concurrency and rate limits of the tasks this worker may run, by task name.

    Registered tasks, and ``django.tasks`` functions given limits in
    ``KINETIK["TASKS"]`` (a worker may not have imported them yet).
    """
    limits = {task.name: task.effective_options().limit for task in registry}
    for name, overrides in get_settings().tasks.items():
        if name not in limits:
            limits[name] = TaskOptions().merged(overrides, where=f'KINETIK["TASKS"][{name!r}]').limit
    return {name: limit for name, limit in limits.items() if limit}


def tags_from_environment() -> list[str]:
    """Tags from ``KINETIK_QUEUE="a,b"`` (Kinetik's environment middleware)."""
    return [tag.strip() for tag in os.environ.get("KINETIK_QUEUE", "").split(",") if tag.strip()]


class Worker(Upkeep):
    """One worker process's loop. ``run()`` blocks until the worker stops.

    The upkeep between claims (timeouts, lost leases, fencing, promotions and
    the periodic passes) is in :class:`~.upkeep.Upkeep`.
    """

    def __init__(
        self,
        tags: Sequence[str] | None = None,
        *,
        concurrency: int = 1,
        interval: float | None = None,
        burst: bool = False,
        max_jobs: int | None = None,
        max_memory: int | None = None,
        shutdown_timeout: float | None = None,
        backend: Backend | None = None,
        supervised: bool = False,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, not {concurrency}")
        if max_jobs is not None and max_jobs < 1:
            raise ValueError(f"max_jobs must be at least 1, not {max_jobs}")
        settings = get_settings()
        self.tags = list(tags or tags_from_environment() or default_tags())
        self.concurrency = concurrency
        self.interval = settings.interval if interval is None else interval
        self.burst = burst
        self.max_jobs = max_jobs
        self.max_memory = max_memory
        self.shutdown_timeout = settings.shutdown_timeout if shutdown_timeout is None else shutdown_timeout
        self.lease = settings.lease
        self.supervised = supervised
        self.backend = backend or get_backend()
        self.name = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.worker_id: int | None = None
        self.jobs_done = 0
        self.jobs_claimed = 0
        #: after run(): job code (put back or timed out) still runs in this process's threads
        self.code_still_running = False

        self._alias = settings.database
        self._middleware = middleware_factories(settings.middleware)
        self._running: set[RunningJob] = set()
        #: jobs whose code returned, waiting for the settler to write their end
        self._settling: set[RunningJob] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._forced = threading.Event()
        self._paused: set[str] = set()
        self._idle = False
        self._fenced = False
        self._recycle_reason = ""
        self._database_failures = 0
        self._pool: ThreadPool[RunningJob] | None = None
        #: which jobs this worker may claim (set when it starts)
        self._runnable = Runnable(())
        #: the claims of tasks with concurrency or rate limits (set when it starts, if any)
        self._limited: LimitedClaims | None = None
        #: time.monotonic() at which a job held back by a limit may start (None: none is)
        self._limited_retry_at: float | None = None
        self._purger = Purger(self._alias)
        self._scheduler = Scheduler(self._alias, self.interval)
        #: while running: the thread that wakes the loop when new jobs arrive (None: polling only)
        self.listener: PostgresListener | None = None
        #: while running with KINETIK["REDIS"]: where job ids come from first
        self.feed: RedisFeed | None = None
        self._settler: Settler | None = None
        # time.monotonic() marks for work done "every so often"
        self._next_due = 0.0
        self._next_paused_check = 0.0
        self._next_recovery = 0.0
        self._next_memory_check = 0.0
        self._next_sweep = 0.0
        self._next_limits_tidy = 0.0
        self._recovery_every = max(0.2, min(self.lease / 3, 10.0))

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
        limits = task_limits()
        self._runnable = Runnable(
            tuple(name for name in registry.names() if name not in limits),
            django_tasks=tasks_configuration.enabled(),
            excluded=frozenset(limits),
        )
        if limits:
            self._limited = LimitedClaims(self.backend, limits)  # type: ignore[arg-type]
        if not self._runnable and not limits:
            raise ImproperlyConfigured(
                "No kinetik tasks are registered, so this worker has nothing to run. "
                "Define tasks with @kinetik.task in an installed app's tasks.py, or configure "
                "django_kinetik.tasks_backend.KinetikTaskBackend in TASKS to run django.tasks functions."
            )
        if not self.tags:
            raise ImproperlyConfigured("The worker has no tags to serve.")
        previous_handlers = self._install_signal_handlers()
        try:
            if not self._register():
                return 0
            executor = Executor(self.backend, self._alias, self._middleware, lease=self.lease, worker_name=self.name)
            pool: ThreadPool[RunningJob] = ThreadPool(
                self.concurrency, lambda running: self._execute(executor, running), name="kinetik-job"
            )
            self._pool = pool
            self._settler = Settler(
                self.backend,
                self.lease,
                lambda running, settlement, ok: self._settled(executor, running, settlement, ok),
                logs=executor.logs,
            )
            heartbeat = Heartbeat(self.backend, self.worker_id, self.lease, self._running_ids, self._stats)  # type: ignore[arg-type]
            heartbeat.start()
            # With Redis, its blocking pop is the wake-up (the NOTIFY would
            # arrive before the id is pushed, and send the loop to the database).
            listener = (
                PostgresListener(self._alias, self.tags, self._wake)
                if PostgresListener.available(self._alias) and not fastpath.enabled()
                else None
            )
            self.listener = listener
            if listener is not None:
                listener.start()
            if fastpath.enabled():
                self.feed = RedisFeed(self._alias, self._open_tags, self._wake)
                self.feed.start()
            logger.info("Worker %s serving %s with %d thread(s).", self.name, ", ".join(self.tags), self.concurrency)
            self._serve(executor, pool, heartbeat)
            if listener is not None:
                listener.stop()
            if self.feed is not None:
                self.feed.stop()
            status = self._shut_down(pool, heartbeat)
            if status == 0 and not self.code_still_running:
                # Their connections close before run() returns (a worker run in a
                # thread must not leave any). Not when put-back jobs' code still
                # runs here: then the process must end at once.
                for thread in (listener, self.feed):
                    if thread is not None:
                        thread.join(timeout=2)
            if status == 0 and self.supervised and self._recycle_reason:
                return EXIT_RECYCLE
            return status
        finally:
            for signum, handler in previous_handlers.items():
                signal.signal(signum, handler)  # type: ignore[arg-type]
            # This thread's connections: a worker run from a thread must not leave one open.
            connections.close_all()

    def _register(self) -> bool:
        """Record this worker, waiting out a database that is not up yet."""
        info = WorkerInfo(
            name=self.name,
            host=socket.gethostname(),
            pid=os.getpid(),
            tags=self.tags,
            concurrency=self.concurrency,
        )
        while not self._stopping.is_set():
            try:
                self.worker_id = self.backend.register_worker(info)
                return True
            except DATABASE_ERRORS as error:
                self._database_trouble(error)
        return False

    def _stats(self) -> dict[str, int]:
        """What the worker row shows about this worker's work."""
        runaways = self._pool.runaways if self._pool is not None else 0
        return {"jobs_done": self.jobs_done, "runaway_threads": runaways}

    def _running_ids(self) -> list[int]:
        with self._lock:
            return [running.job.pk for running in (*self._running, *self._settling)]

    def _execute(self, executor: Executor, running: RunningJob) -> None:
        """Runs in a pool thread: the job's code, then its end goes to the settler.

        The slot is free as soon as the code returns: the next job can run
        while the settler writes this one's end (the job stays leased, and
        renewed, until it is written).
        """
        settlement = None
        try:
            settlement = executor.run(running)
        finally:
            with self._lock:
                self._running.discard(running)
                if settlement is not None:
                    self._settling.add(running)
            if settlement is not None:
                self._settler.submit(running, settlement)  # type: ignore[union-attr]
            self._wake.set()

    def _settled(self, executor: Executor, running: RunningJob, settlement: Settlement, ok: bool) -> None:
        """Runs in the settler thread once the attempt's end is written (or refused)."""
        try:
            job = running.job
            if ok and settlement.status == Status.QUEUED and self.feed is not None and job.limit_key is None:
                self.feed.push([(job.pk, job.tag, job.priority)])  # a retry without delay
            if ok and settlement.status == Status.COMPLETED and running.options.remove_on_complete:
                self._purger.completed(running.job.pk)
            executor.recorded(running, settlement, ok)
        finally:
            if self._limited is not None:
                self._limited.job_ended(running.job.task)
            with self._lock:
                self._settling.discard(running)
                self.jobs_done += 1
            self._wake.set()

    @property
    def _busy(self) -> bool:
        """Jobs still running here, or ended but not yet written."""
        return bool(self._running or self._settling)

    def _serve(self, executor: Executor, pool: ThreadPool[RunningJob], heartbeat: Heartbeat) -> None:
        while not self._stopping.is_set():
            # Clear before looking at the state: a wake-up after this point is kept.
            self._wake.clear()
            self._enforce_timeouts(executor, pool, heartbeat)
            self._check_fence(heartbeat)
            if self.supervised and supervisor_gone():
                logger.warning("Worker %s: its supervisor is gone; stopping.", self.name)
                self.stop()
                break
            # A settle that lands after the claim below may have queued a retry.
            done_before = self.jobs_done
            try:
                # Claim before the rest of the upkeep: a wake-up for a new job
                # should not wait on it. Which tags are paused must be known first.
                changed = self._refresh_paused()
                claimed = self._claim(executor, pool)
                changed = self._maintain(executor) or changed
            except DATABASE_ERRORS as error:
                self._database_trouble(error)
                continue
            if self._database_failures:
                logger.warning("Worker %s reached the database again.", self.name)
                self._database_failures = 0
            if claimed or changed or self.jobs_done != done_before:
                continue
            if self._finished():
                return
            if self.feed is not None and self._free_slots() > 0:
                self.feed.hungry.set()  # block in Redis for the next id while we sleep
            if self._limited is not None and not self._busy:
                self._limited.idle()
            self._wake.wait(self._next_wait())

    def _free_slots(self) -> int:
        if self._fenced or self._recycle_reason:
            return 0
        if len(self._settling) > 2 * self.concurrency:
            return 0  # the database is behind with our writes: do not take more
        free = self.concurrency - len(self._running)
        if self.max_jobs is not None:
            free = min(free, self.max_jobs - self.jobs_claimed)
        return free

    def _open_tags(self) -> list[str]:
        """The tags to take work from now, in order."""
        return [tag for tag in self.tags if tag not in self._paused]

    def _claim(self, executor: Executor, pool: ThreadPool[RunningJob]) -> int:
        free = self._free_slots()
        if free <= 0:
            return 0
        # First what the limits allow: never more than that, so limited tasks
        # cannot crowd out other work beyond their limits (and they are never in Redis).
        claimed = self._claim_limited(executor, pool, free)
        from_redis = 0
        while self.feed is not None and claimed < free:
            ids = self.feed.take(free - claimed)
            if not ids:
                break
            # Redis picked them; the database says which are still ours to run
            # (stale ones are skipped, so ask again). Ids lost to a database
            # error here stay queued in the database, where the fallback claim
            # and the reconciler find them.
            jobs = self.backend.claim_ids(self.worker_id, ids, self._runnable, self.lease)  # type: ignore[arg-type]
            for job in jobs:
                self._start(executor, pool, job)
            from_redis += len(jobs)
            claimed += len(jobs)
        if not from_redis and claimed < free and self._runnable:
            # The database claim: always without Redis; with it, the fallback
            # when Redis offered nothing runnable (down, flushed, or just empty).
            from_database = 0
            for tag in self._open_tags():
                jobs = self.backend.claim(self.worker_id, tag, self._runnable, free - claimed, self.lease)  # type: ignore[arg-type]
                # Started at once, tag by tag: a database error on the next tag must
                # not strand jobs this claim already took.
                for job in jobs:
                    self._start(executor, pool, job)
                from_database += len(jobs)
                claimed += len(jobs)
                if claimed >= free:
                    break
            if from_database and self.feed is not None:
                self.feed.database_had_more()
        if claimed:
            self._idle = False
        elif not self._busy and not self._idle and self._limited_retry_at is None:
            self._idle = True
            emit(queue_empty, self, tags=list(self.tags))
        return claimed

    def _claim_limited(self, executor: Executor, pool: ThreadPool[RunningJob], free: int) -> int:
        """Claim jobs of tasks with concurrency or rate limits, as far as the limits allow."""
        if self._limited is None:
            return 0
        with self._lock:
            ending = {running.job.task for running in self._settling}
        limited = self._limited.claim(self._open_tags(), free, self.worker_id, self.lease, ending)  # type: ignore[arg-type]
        self._limited_retry_at = limited.retry_at
        for job in limited.jobs:
            self._start(executor, pool, job)
        return len(limited.jobs)

    def _start(self, executor: Executor, pool: ThreadPool[RunningJob], job: Job) -> None:
        self.jobs_claimed += 1
        try:
            running = executor.start(job)
        except TaskNotImportable as error:
            # A django.tasks function whose code is not in this process (an
            # older deploy): leave the job to a worker that has it.
            logger.warning("Job %s: %s; leaving it queued for a worker that has it.", job.pk, error)
            self._runnable = replace(self._runnable, excluded=self._runnable.excluded | {job.task})
            self.backend.release(job)
            self.jobs_claimed -= 1
            return
        except Exception as error:
            logger.exception("Job %s (%s) cannot start.", job.pk, job.task)
            executor.settle(job, outcomes.failed(job, TaskOptions(), error))
            return
        with self._lock:
            self._running.add(running)
        pool.submit(running)

    def _finished(self) -> bool:
        """Whether the loop should end now that nothing was claimed."""
        if self._busy:
            return False
        if self.max_jobs is not None and self.jobs_claimed >= self.max_jobs:
            self._recycle_reason = self._recycle_reason or f"ran its {self.max_jobs} jobs (--max-jobs)"
        if self._recycle_reason:
            logger.info("Worker %s stopping: %s.", self.name, self._recycle_reason)
            return True
        if self.burst and self._free_slots() > 0 and self._limited_retry_at is None:
            logger.info("Worker %s found no runnable jobs; burst mode, stopping.", self.name)
            return True
        return False

    def _next_wait(self) -> float:
        now = time.monotonic()
        marks = [now + self.interval, self._next_recovery]
        if self._free_slots() > 0:
            marks.append(self._next_due)
            if self._limited_retry_at is not None:
                marks.append(self._limited_retry_at)
        with self._lock:
            marks += [running.deadline for running in self._running if running.deadline is not None]
        return max(0.0, min(marks) - now)

    # -- stopping ----------------------------------------------------------

    def _exit_now(self, heartbeat: Heartbeat, status: int, reason: str) -> None:
        """End a supervised child at once: put other jobs back, then exit (the supervisor replaces it)."""
        logger.warning("Worker %s exiting: %s.", self.name, reason)
        if self._settler is not None:
            self._settler.stop(timeout=5)
        heartbeat.stop()
        try:
            self.backend.requeue_unfinished(self.worker_id)  # type: ignore[arg-type]
            self.backend.retire_worker(self.worker_id, self._stats())  # type: ignore[arg-type]
        except DATABASE_ERRORS:
            pass  # the leases bring the jobs back
        for handler in logging.getLogger("django_kinetik").handlers:
            handler.flush()
        os._exit(status)

    def _shut_down(self, pool: ThreadPool[RunningJob], heartbeat: Heartbeat) -> int:
        deadline = time.monotonic() + self.shutdown_timeout
        if self._busy:
            logger.info(
                "Worker %s waiting up to %gs for %d running job(s).",
                self.name,
                self.shutdown_timeout,
                len(self._running),
            )
        while self._busy and not self._forced.is_set():
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
        unfinished = bool(self._running)
        with self._lock:
            for running in self._running:
                running.context.close()
        pool.stop(timeout=0 if unfinished else 5)
        if self._settler is not None:
            self._settler.stop(timeout=self.lease)  # write the ends that are still waiting
        self.code_still_running = unfinished or pool.runaways > 0
        logger.info("Worker %s stopped after %d job(s).", self.name, self.jobs_done)
        for attempt in range(5):
            try:
                self.backend.retire_worker(self.worker_id, self._stats())  # type: ignore[arg-type]
                if unfinished:
                    # Last, so the process can end right after: the jobs' code is
                    # still running in this process until it exits.
                    requeued = self.backend.requeue_unfinished(self.worker_id)  # type: ignore[arg-type]
                    if self.feed is not None:
                        self.feed.push_ids(requeued)
                    logger.warning(
                        "Worker %s put %d unfinished job(s) back in the queue: %s", self.name, len(requeued), requeued
                    )
                break
            except DATABASE_ERRORS as error:
                logger.warning("Worker %s could not say goodbye to the database (%s); retrying.", self.name, error)
                connections.close_all()
                time.sleep(0.5 * (attempt + 1))
        return 0
