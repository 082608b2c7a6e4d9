"""The worker: claims jobs tag by tag, hands them to its job threads, writes how they ended.

Kinetik's semantics: tags are served in the order given; whenever a slot is
free the worker asks the first tag for work, then the next, so after every job
it goes back to the first tag that has work. It never claims ahead of its free
slots, so a job of an earlier tag created while later tags' jobs run is the
next one started. Only when every tag is empty does it wait (``interval``, or
until something is due) and send ``queue_empty``; a running job that ends, a
wake-up (NOTIFY, Redis, SQLite's commit watch) or a stop ends the wait early.

A job's path: the loop claims it (one statement for every tag it serves, up
to its free slots) and hands it to a job thread; the thread runs it and hands
its end to the settler (``settler.py``), which writes ends in batches on a
connection of its own, so the next claim never waits for the last settle.
Jobs of tasks with concurrency or rate limits are claimed first, as far as
the limits allow (``backends/limited.py``). Between claims the duties that are
due run (``duties.py``): promotions, lease recovery, the purge, schedules...

A database that goes away is waited out with backoff; nothing is settled
twice, since every write is guarded by the attempt it belongs to.

Shutdown order (SIGTERM/SIGINT, or :meth:`Worker.stop`): stop claiming; keep
the heartbeat going and the ends written while running jobs get
``shutdown_timeout`` to finish; put whatever is still running back in the
queue; mark the worker offline. A second signal skips the wait and exits at
once; the leases bring those jobs back.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import replace
from types import FrameType

from django.core.exceptions import ImproperlyConfigured
from django.db import connections

from .. import execution, lifecycle, outcomes
from ..backends import Backend, WorkerInfo, get_backend
from ..backends.base import DATABASE_ERRORS, Runnable, Settlement
from ..backends.limited import LimitedClaims
from ..conf import django_tasks_enabled, django_tasks_queues, get_settings
from ..exceptions import TaskNotImportable
from ..execution import Attempt
from ..fastpath import connection as fastpath
from ..joblogs import LogWriter
from ..lifecycle import Ended
from ..models import Job
from ..registry import registry
from ..signals import emit, queue_empty
from ..values.limits import Limit
from ..values.options import TaskOptions
from .codes import ExitCode
from .duties import DependencySweep, Duty, LeaseRecovery, LimitsTidy, MemoryCheck, PausedTags, Promotion
from .executor import Executor
from .heartbeat import Heartbeat
from .purge import Purger
from .redisfeed import RedisFeed
from .scheduler import Scheduler
from .settler import Settler
from .supervisor import supervisor_gone
from .threads import BackgroundThread
from .wakeup import listener_for

logger = logging.getLogger("django_kinetik.worker")

#: job threads per worker process when --concurrency is not given (see the README's "Workers")
DEFAULT_CONCURRENCY = 20


def default_tags() -> list[str]:
    """A worker given no tags serves its tasks' tags, then the queues of kinetik's django.tasks backends."""
    return list(dict.fromkeys([*registry.tags(), *django_tasks_queues()]))


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


class _Ended:
    """An attempt's end that did not come from its code: it could not start, or it timed out."""

    __slots__ = ("job", "options", "settlement", "task")

    def __init__(self, attempt: Attempt | None, job: Job, settlement: Settlement) -> None:
        self.job = job
        self.task = attempt.task if attempt is not None else None
        self.options = attempt.options if attempt is not None else None
        self.settlement = settlement


class Worker:
    """One worker process's loop. ``run()`` blocks until the worker stops."""

    def __init__(
        self,
        tags: Sequence[str] | None = None,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
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
        self.backend = backend or get_backend(settings.database)
        self.alias = self.backend.alias
        self.name = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.worker_id = 0
        self.jobs_done = 0
        self.jobs_claimed = 0
        #: after run(): job code (put back or timed out) still runs in this process's threads
        self.code_still_running = False

        self._logs = LogWriter(self.alias)
        #: attempts handed to a job thread, by job id (changed by the loop's thread only)
        self._running: dict[int, Attempt] = {}
        self._running_lock = threading.Lock()
        #: attempts whose code returned, handed back by the job threads
        self._returned: deque[Attempt] = deque()
        self._done_lock = threading.Lock()
        self._wake = threading.Event()
        #: set while the loop waits for work: the commit watch only wakes an idle loop
        self._idle = threading.Event()
        self._stopping = threading.Event()
        self._forced = threading.Event()
        self._fenced = False
        self._queue_empty_sent = False
        self._recycle_reason = ""
        self._database_failures = 0
        self._next_deadline: float | None = None
        #: which jobs this worker may claim, and the claims of limited tasks (set when it starts)
        self._runnable = Runnable(())
        self._limited: LimitedClaims | None = None
        #: time.monotonic() at which a job held back by a limit may start (None: none is)
        self._limited_retry_at: float | None = None
        self._scheduler = Scheduler(self.alias, self.interval)
        self._paused = PausedTags(self.backend, self.interval)
        self._duties: list[Duty] = []
        self._executor: Executor | None = None
        self._settler: Settler | None = None
        self._heartbeat: Heartbeat | None = None
        #: while running: the thread that wakes the loop when new jobs arrive (None: polling only)
        self.listener: BackgroundThread | None = None
        #: while running with KINETIK["REDIS"]: where job ids come from first
        self.feed: RedisFeed | None = None

    # -- control -----------------------------------------------------------

    def stop(self, *, force: bool = False) -> None:
        """Ask the worker to stop (thread-safe); ``force`` skips the graceful wait."""
        if force:
            self._forced.set()
        self._stopping.set()
        self._wake.set()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # Only set flags here: the loop does the work.
        self.stop(force=self._stopping.is_set())

    def _install_signal_handlers(self) -> dict[int, object]:
        if threading.current_thread() is not threading.main_thread():
            return {}
        return {signum: signal.signal(signum, self._on_signal) for signum in (signal.SIGTERM, signal.SIGINT)}

    # -- starting and stopping -----------------------------------------------

    def run(self) -> int:
        """Serve jobs until stopped (or drained, with ``burst``); return an exit status."""
        limits = task_limits()
        self._runnable = Runnable(
            tuple(name for name in registry.names() if name not in limits),
            django_tasks=django_tasks_enabled(),
            excluded=frozenset(limits),
        )
        if not self._runnable and not limits:
            raise ImproperlyConfigured(
                "No kinetik tasks are registered, so this worker has nothing to run. "
                "Define tasks with @kinetik.task in an installed app's tasks.py, or configure "
                "django_kinetik.tasks_backend.KinetikTaskBackend in TASKS to run django.tasks functions."
            )
        if not self.tags:
            raise ImproperlyConfigured("The worker has no tags to serve.")
        if limits:
            self._limited = self.backend.limited_claims(limits)
        previous_handlers = self._install_signal_handlers()
        lifecycle.removals.enabled = True
        try:
            if not self._register():
                return ExitCode.OK
            self._settler = Settler(self.backend, self.lease, self._logs, self._settled)
            self._settler.start()
            self._executor = Executor(self.concurrency, self._returned_from_thread)
            self._heartbeat = Heartbeat(self.backend, self.worker_id, self.lease, self._lease_ids, self._stats)
            self._heartbeat.start()
            self._start_wakeups()
            self._duties = self._make_duties()
            logger.info("Worker %s serving %s with %d thread(s).", self.name, ", ".join(self.tags), self.concurrency)
            self._serve()
            for thread in (self.listener, self.feed):
                if thread is not None:
                    thread.stop()
            status = self._shut_down()
            if status == ExitCode.OK and not self.code_still_running:
                # Their connections close before run() returns (a worker run in a
                # thread must not leave any). Not when put-back jobs' code still
                # runs here: then the process must end at once.
                for thread in (self.listener, self.feed):
                    if thread is not None:
                        thread.join(timeout=2)
            if status == ExitCode.OK and self.supervised and self._recycle_reason:
                return ExitCode.RECYCLE
            return status
        finally:
            lifecycle.removals.enabled = False
            for signum, handler in previous_handlers.items():
                signal.signal(signum, handler)  # type: ignore[arg-type]
            # This thread's connections: a worker run from a thread must not leave one open.
            connections.close_all()

    def _register(self) -> bool:
        """Record this worker, waiting out a database that is not up yet."""
        info = WorkerInfo(
            name=self.name, host=socket.gethostname(), pid=os.getpid(), tags=self.tags, concurrency=self.concurrency
        )
        while not self._stopping.is_set():
            try:
                self.worker_id = self.backend.register_worker(info)
                return True
            except DATABASE_ERRORS as error:
                self._database_trouble(error)
        return False

    def _start_wakeups(self) -> None:
        if fastpath.enabled():
            # Its blocking pop is the wake-up (a NOTIFY would arrive before the
            # id is pushed, and send the loop to the database).
            self.feed = RedisFeed(self.alias, self._open_tags, self._wake)
            self.feed.start()
        else:
            self.listener = listener_for(self.backend, self.tags, self._wake, self._idle)
            if self.listener is not None:
                self.listener.start()

    def _make_duties(self) -> list[Duty]:
        duties: list[Duty] = [
            Promotion(self.backend, self.tags, self.interval, lambda: self._free_slots() > 0),
            LeaseRecovery(self.backend, self.worker_id, self.lease, self._lease_ids),
            Purger(self.backend),
            self._scheduler,
            DependencySweep(self.alias),
        ]
        if self._limited is not None:
            duties.append(LimitsTidy(self._limited))
        if self.max_memory:
            duties.append(MemoryCheck(self.max_memory, lambda: self.jobs_claimed > 0, self._recycle))
        return duties

    def _recycle(self, reason: str) -> None:
        if not self._recycle_reason:
            self._recycle_reason = reason
            logger.warning("Worker %s: %s; finishing running jobs, then recycling.", self.name, reason)

    def _stats(self) -> dict[str, int]:
        """What the worker row shows about this worker's work."""
        return {"jobs_done": self.jobs_done, "runaway_threads": self._executor.runaways if self._executor else 0}

    def _lease_ids(self) -> list[int]:
        """The jobs whose leases this worker renews: running here, or ended and not yet written."""
        with self._running_lock:
            ids = list(self._running)
        ids += [attempt.job.id for attempt in list(self._returned)]
        if self._settler is not None:
            ids += self._settler.pending_ids()
        return ids

    def _returned_from_thread(self, attempt: Attempt) -> None:
        """Called by a job thread when the attempt's code has returned: its end to the settler, its slot back."""
        if attempt.settlement is not None:
            self._settler.submit(attempt)  # type: ignore[union-attr]
        self._returned.append(attempt)
        self._wake.set()

    def _settled(self, batch: list[Ended]) -> None:
        """Called by the settler once it wrote a batch: they count as done, and may have queued work."""
        with self._done_lock:
            self.jobs_done += len(batch)
        if self._limited is not None:
            for end in batch:
                self._limited.job_ended(end.job.task)
        self._wake.set()

    # -- the loop ----------------------------------------------------------

    @property
    def _busy(self) -> bool:
        """Jobs still running here, or ended but not yet written."""
        return bool(self._running or self._returned or (self._settler is not None and len(self._settler)))

    def _serve(self) -> None:
        while not self._stopping.is_set():
            # Cleared before looking at the state: a wake-up after this point is kept.
            self._wake.clear()
            self._idle.clear()
            now = time.monotonic()
            self._enforce_timeouts(now)
            self._check_fence()
            if self.supervised and supervisor_gone():
                logger.warning("Worker %s: its supervisor is gone; stopping.", self.name)
                self.stop()
                break
            # An end the settler writes after the claim below may have queued work.
            done_before = self.jobs_done
            try:
                # Which tags are paused must be known before claiming from them.
                changed = self._paused.run(now) if now >= self._paused.next_at else False
                again = self._round(now)
                again = self._run_duties(now) or again or changed or self.jobs_done != done_before
            except DATABASE_ERRORS as error:
                self._database_trouble(error)
                continue
            if self._database_failures:
                logger.warning("Worker %s reached the database again.", self.name)
                self._database_failures = 0
            if again:
                continue
            if self._finished():
                return
            if self.feed is not None and self._free_slots() > 0:
                self.feed.hungry.set()  # block in Redis for the next id while we sleep
            if self._limited is not None and not self._busy:
                self._limited.idle()
            self._idle.set()
            self._wake.wait(self._next_wait())

    def _round(self, now: float) -> bool:
        """Take back the slots of jobs that returned and claim what fits; True if there may be more now."""
        self._take_returned()
        free = self._free_slots()
        if free <= 0:
            return False
        claimed = self._claim_limited(free) if self._limited is not None else 0
        want = free - claimed
        from_redis = 0
        while self.feed is not None and want > 0:
            # Redis picked them; the database says which are still ours to run
            # (stale ones are skipped, so ask again). Ids lost to a database
            # error here stay queued in the database, where the fallback claim
            # and the reconciler find them.
            ids = self.feed.take(want)
            if not ids:
                break
            jobs = self.backend.claim_ids(self.worker_id, ids, self._runnable, self.lease)
            for job in jobs:
                self._start(job)
            from_redis += len(jobs)
            want -= len(jobs)
        if want > 0 and not from_redis and self._runnable:
            # The database claim: always without Redis; with it, the fallback
            # when Redis offered nothing runnable (down, flushed, or just empty).
            jobs = self.backend.claim(self.worker_id, self._open_tags(), self._runnable, want, self.lease)
            for job in jobs:
                self._start(job)
            if jobs and self.feed is not None:
                self.feed.database_had_more()
            want -= len(jobs)
        claimed = free - want
        if claimed:
            self._queue_empty_sent = False
        elif not self._busy and not self._queue_empty_sent and self._limited_retry_at is None:
            self._queue_empty_sent = True
            emit(queue_empty, self, tags=list(self.tags))
        # A full claim may leave more behind.
        return claimed >= free

    def _take_returned(self) -> None:
        """Free the slots of the attempts whose code returned."""
        returned = self._returned
        with self._running_lock:
            while returned:
                attempt = returned.popleft()
                if self._running.get(attempt.job.id) is attempt:
                    del self._running[attempt.job.id]

    def _database_trouble(self, error: Exception) -> None:
        self._database_failures += 1
        pause = min(0.1 * 2 ** min(self._database_failures, 10), 5.0)
        if self._database_failures == 1 or self._database_failures % 20 == 0:
            logger.warning(
                "Worker %s cannot reach the database (%s: %s); retrying in %.1fs.",
                self.name,
                type(error).__name__,
                str(error).strip().splitlines()[0] if str(error) else "",
                pause,
            )
        connections.close_all()
        self._stopping.wait(pause)

    def _claim_limited(self, free: int) -> int:
        """Claim jobs of tasks with concurrency or rate limits, as far as the limits allow."""
        assert self._limited is not None
        ending = self._settler.pending_tasks() if self._settler is not None else set()
        limited = self._limited.claim(self._open_tags(), free, self.worker_id, self.lease, ending)
        self._limited_retry_at = limited.retry_at
        for job in limited.jobs:
            self._start(job)
        return len(limited.jobs)

    def _start(self, job: Job) -> None:
        self.jobs_claimed += 1
        try:
            attempt = execution.prepare(job, alias=self.alias, logs=self._logs, worker_name=self.name)
        except TaskNotImportable as error:
            # A django.tasks function whose code is not in this process (an
            # older deploy): leave the job to a worker that has it.
            logger.warning("Job %s: %s; leaving it queued for a worker that has it.", job.id, error)
            self._runnable = replace(self._runnable, excluded=self._runnable.excluded | {job.task})
            lifecycle.put_back(self.backend, job)
            self.jobs_claimed -= 1
            return
        except Exception as error:
            logger.exception("Job %s (%s) cannot start.", job.id, job.task)
            self._settler.submit(_Ended(None, job, outcomes.failed(job, TaskOptions(), error)))  # type: ignore[union-attr]
            return
        with self._running_lock:
            self._running[job.id] = attempt
        if attempt.deadline is not None and (self._next_deadline is None or attempt.deadline < self._next_deadline):
            self._next_deadline = attempt.deadline
        self._executor.submit(attempt)  # type: ignore[union-attr]

    def _run_duties(self, now: float) -> bool:
        changed = False
        for duty in self._duties:
            if now >= duty.next_at:
                changed = duty.run(now) or changed
        if self.feed is not None:
            changed = self.feed.maintain(self.interval) or changed
        return changed

    def _free_slots(self) -> int:
        if self._fenced or self._recycle_reason or self._stopping.is_set():
            return 0
        if self._settler is not None and len(self._settler) > 2 * self.concurrency:
            return 0  # the database is behind with our writes: do not take more
        free = self.concurrency - len(self._running)
        if self.max_jobs is not None:
            free = min(free, self.max_jobs - self.jobs_claimed)
        return free

    def _open_tags(self) -> list[str]:
        """The tags to take work from now, in order."""
        paused = self._paused.paused
        return [tag for tag in self.tags if tag not in paused] if paused else self.tags

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
        marks = [now + self.interval]
        marks.append(self._paused.next_at)
        marks += [duty.next_at for duty in self._duties if not isinstance(duty, Promotion) or self._free_slots() > 0]
        if self._limited_retry_at is not None and self._free_slots() > 0:
            marks.append(self._limited_retry_at)
        if self._next_deadline is not None:
            marks.append(self._next_deadline)
        return max(0.0, min(marks) - now)

    # -- timeouts and fencing --------------------------------------------------

    def _enforce_timeouts(self, now: float) -> None:
        if self._next_deadline is None or now < self._next_deadline:
            return
        with self._running_lock:
            expired = [a for a in self._running.values() if a.deadline is not None and a.deadline <= now]
            for attempt in expired:
                del self._running[attempt.job.id]
            deadlines = [a.deadline for a in self._running.values() if a.deadline is not None]
        self._next_deadline = min(deadlines) if deadlines else None
        if not expired:
            return
        ends: list[Ended] = []
        for attempt in expired:
            attempt.context.close()  # its late logs and result are ignored
            if not self.supervised:
                self._executor.abandon(attempt)  # type: ignore[union-attr]  # a new thread takes the slot
            with self._done_lock:
                self.jobs_done += 1
            ends.append(_Ended(attempt, attempt.job, outcomes.timed_out(attempt.job, attempt.options)))  # type: ignore[arg-type]
            if self._limited is not None:
                self._limited.job_ended(attempt.job.task)
        lifecycle.settle(self.backend, ends, patience=self.lease)
        if self.supervised:
            # Only ending the process stops the timed-out code for sure.
            self._exit_now(ExitCode.REPLACE, "a job timed out; replacing this process to kill it")
        logger.warning(
            "Worker %s: %d job(s) timed out; %d thread(s) still run timed-out code (use --processes for a hard kill).",
            self.name,
            len(expired),
            self._executor.runaways if self._executor else 0,
        )

    def _check_fence(self) -> None:
        """Stop taking work when our leases may already have been taken back."""
        if self._heartbeat is None:
            return
        silent = self._heartbeat.silent_for()
        fenced = silent > self.lease * 0.75
        if fenced and not self._fenced:
            logger.error(
                "Worker %s has not renewed its leases for %.1fs; it stops claiming until it can.", self.name, silent
            )
            if self.supervised:
                self._exit_now(ExitCode.FENCED, "leases could not be renewed")
        elif self._fenced and not fenced:
            logger.warning("Worker %s renews its leases again; claiming resumes.", self.name)
        self._fenced = fenced

    # -- stopping ----------------------------------------------------------

    def _exit_now(self, status: int, reason: str) -> None:
        """End a supervised child at once: write what ended, put other jobs back, then exit (it is replaced)."""
        logger.warning("Worker %s exiting: %s.", self.name, reason)
        if self._settler is not None:
            self._settler.stop(timeout=5)
        if self._heartbeat is not None:
            self._heartbeat.stop()
        try:
            lifecycle.put_back_unfinished(self.backend, self.worker_id)
            self.backend.retire_worker(self.worker_id, self._stats())
        except DATABASE_ERRORS:
            pass  # the leases bring the jobs back
        for handler in logging.getLogger("django_kinetik").handlers:
            handler.flush()
        os._exit(status)

    def _shut_down(self) -> int:
        deadline = time.monotonic() + self.shutdown_timeout
        if self._busy:
            logger.info(
                "Worker %s waiting up to %gs for %d running job(s).",
                self.name,
                self.shutdown_timeout,
                len(self._running),
            )
        while self._busy and not self._forced.is_set():
            self._take_returned()
            if not self._running:
                break
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._wake.wait(min(left, 0.5))
            self._wake.clear()
        if self._forced.is_set():
            logger.warning("Worker %s stopping at once; leases will bring back running jobs.", self.name)
            return ExitCode.FORCED
        if self._heartbeat is not None:
            self._heartbeat.stop()
        # Threads still inside a job exit (closing their connections) once it
        # returns; its outcome will be discarded, since the job is put back.
        with self._running_lock:
            unfinished = bool(self._running)
            for attempt in self._running.values():
                attempt.context.close()
        executor = self._executor
        if executor is not None:
            executor.stop(timeout=0 if unfinished else 5)
        if self._settler is not None:
            self._settler.stop(timeout=self.lease)  # write the ends that are still waiting
        self.code_still_running = unfinished or (executor is not None and executor.runaways > 0)
        logger.info("Worker %s stopped after %d job(s).", self.name, self.jobs_done)
        for tries in range(5):
            try:
                self.backend.retire_worker(self.worker_id, self._stats())
                if unfinished:
                    # Last, so the process can end right after: the jobs' code is
                    # still running in this process until it exits.
                    requeued = lifecycle.put_back_unfinished(self.backend, self.worker_id)
                    logger.warning(
                        "Worker %s put %d unfinished job(s) back in the queue: %s",
                        self.name,
                        len(requeued),
                        [job.id for job in requeued],
                    )
                break
            except DATABASE_ERRORS as error:
                logger.warning("Worker %s could not say goodbye to the database (%s); retrying.", self.name, error)
                connections.close_all()
                time.sleep(0.5 * (tries + 1))
        return ExitCode.OK
