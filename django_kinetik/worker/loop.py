"""The worker: claims jobs tag by tag, hands them to its job threads, and keeps the queue honest.

Kinetik's semantics: tags are served in the order given; whenever a slot is
free the worker asks the first tag for work, then the next, so after every job
it goes back to the first tag that has work. It never claims ahead of its free
slots, so a job of an earlier tag created while later tags' jobs run is the
next one started. Only when every tag is empty does it wait (``interval``, or
until something is due) and send ``queue_empty``; a running job that ends, a
wake-up (NOTIFY, Redis, SQLite's commit watch) or a stop ends the wait early.

A job's path: the loop claims it (``claims.py``: one statement for every tag
it serves, up to its free slots) and hands it to a job thread
(``executor.py``); the thread runs it and hands its end to the settler
(``settler.py``), which writes ends in batches on a connection of its own, so
the next claim never waits for the last settle. Between claims the duties that
are due run (``duties.py``): promotions, lease recovery, the purge, schedules...

A database that goes away is waited out with backoff; nothing is settled
twice, since every write is guarded by the attempt it belongs to.
Timeouts and the graceful stop: ``shutdown.py``.
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

from django.db import connections
from django.utils import timezone

from .. import execution, lifecycle, outcomes
from ..backends import Backend, WorkerInfo, get_backend
from ..backends.base import DATABASE_ERRORS, Runnable
from ..backends.limited import LimitedClaims
from ..conf import get_settings
from ..exceptions import UnknownTask
from ..execution import Attempt, Ending
from ..fastpath import connection as fastpath
from ..joblogs import LogWriter
from ..lifecycle import Ended
from ..models import Job
from ..signals import emit, queue_empty
from ..values.options import TaskOptions
from . import serving, startup
from .cancels import CancelWatch
from .claims import Claims
from .codes import ExitCode
from .duties import DependencySweep, Duty, LeaseRecovery, LimitsTidy, MemoryCheck, PausedTags, Promotion, Upkeep
from .executor import Executor
from .fence import Fence, end_process
from .heartbeat import Heartbeat
from .missing import MissingCode, UnknownTasks
from .purge import Purger
from .redisfeed import RedisFeed
from .scheduler import Scheduler
from .settler import Settler
from .shutdown import exit_now, shut_down, time_out
from .slots import Slots
from .stop_signals import SignalSafeEvent
from .supervisor import supervisor_gone
from .threads import BackgroundThread, DatabaseTrouble
from .wakeup import listener_for

logger = logging.getLogger("django_kinetik.worker")


#: job threads per worker process when --concurrency is not given (see the README's "Workers")
DEFAULT_CONCURRENCY = 20


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
        self.tags = list(tags or serving.tags_from_environment() or serving.default_tags())
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

        self._slots = Slots(concurrency)
        self._logs = LogWriter(self.alias)
        self._settler = Settler(self.backend, self.lease, self._logs, self._settled)
        self._executor: Executor | None = None
        self._heartbeat: Heartbeat | None = None
        self._fence: Fence | None = None
        #: what the fence does when leases may expire under running attempts (tests replace it)
        self.fence_breach = end_process
        self._done_lock = threading.Lock()
        # The three the signal handler sets (worker/stop_signals.py says why they are not threading.Events).
        self._wake = SignalSafeEvent()
        #: set while the loop waits for work: the commit watch only wakes an idle loop
        self._idle = threading.Event()
        self._stopping = SignalSafeEvent()
        self._forced = SignalSafeEvent()
        self._fenced = False
        self._queue_empty_sent = False
        self._recycle_reason = ""
        self._trouble = DatabaseTrouble(self.name, self._stopping)
        self._paused = PausedTags(self.backend, self.interval)
        self._scheduler = Scheduler(self.alias, self.interval)
        #: the claims of tasks with concurrency or rate limits, and all claims (set when it starts)
        self._limited: LimitedClaims | None = None
        self._claims = Claims(
            self.backend, self.lease, Runnable(()), None, self._open_tags, self._settler.pending_tasks, self.interval
        )
        self._upkeep = Upkeep([], self.name)
        self._missing = MissingCode(self.backend, self.name, timezone.now(), self._claims, self._settler.submit)
        #: while running: the thread that wakes the loop when new jobs arrive (None: polling only), and
        #: with KINETIK["REDIS"], where job ids come from first
        self.listener: BackgroundThread | None = None
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
        limits = serving.task_limits()
        self._limited = self.backend.limited_claims(limits) if limits else None
        self._claims.runnable, self._claims.limited = serving.runnable(limits), self._limited
        serving.check(self._claims.runnable, limits, self.tags)
        previous_handlers = self._install_signal_handlers()
        lifecycle.removals.enabled = True
        try:
            if not startup.schema_ready(self.alias, self.name, self._stopping, self._trouble) or not self._register():
                return ExitCode.OK
            startup.warn_unknown_tags(self.tags, self.name)
            self._claims.worker_id = self.worker_id
            self._settler.start()
            self._executor = Executor(self.concurrency, self._returned)
            self._heartbeat = Heartbeat(self.backend, self.worker_id, self.lease, self._lease_ids, self._stats)
            self._heartbeat.start()
            self._fence = Fence(self.lease, self._heartbeat.silent_for, lambda: len(self._slots), self.fence_breach)
            self._fence.start()
            self._start_wakeups()
            self._upkeep = Upkeep(self._make_duties(), self.name)
            logger.info("Worker %s serving %s with %d thread(s).", self.name, ", ".join(self.tags), self.concurrency)
            self._serve()
            wakeups = [thread for thread in (self.listener, self.feed) if thread is not None]
            for thread in wakeups:
                thread.stop()
            status = shut_down(self)
            if status == ExitCode.OK and not self.code_still_running:
                # Their connections close before run() returns (a worker run in a
                # thread must not leave any). Not when put-back jobs' code still
                # runs here: then the process must end at once.
                for thread in wakeups:
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
        # Before the row: a job created after this may be newer than this worker's code.
        self._missing.started_at = timezone.now()
        info = WorkerInfo(
            name=self.name, host=socket.gethostname(), pid=os.getpid(), tags=self.tags, concurrency=self.concurrency
        )
        while not self._stopping.is_set():
            try:
                self.worker_id = self.backend.register_worker(info)
                return True
            except DATABASE_ERRORS as error:
                self._trouble.failed(error)
        return False

    def _start_wakeups(self) -> None:
        if fastpath.enabled():
            # Its blocking pop is the wake-up (a NOTIFY would arrive before the
            # id is pushed, and send the loop to the database).
            self.feed = self._claims.feed = RedisFeed(self.alias, self._open_tags, self._wake)
            self.feed.start()
        else:
            self.listener = listener_for(self.backend, self.tags, self._wake, self._idle)
            if self.listener is not None:
                self.listener.start()

    def _make_duties(self) -> list[Duty]:
        memory = MemoryCheck(self.max_memory, lambda: self.jobs_claimed > 0, self._recycle) if self.max_memory else None
        tidy = LimitsTidy(self._limited) if self._limited is not None else None
        room = lambda: self._free_slots() > 0  # noqa: E731
        return [
            Promotion(self.backend, self.tags, self.interval, room),
            LeaseRecovery(self.backend, self.worker_id, self.lease, self._lease_ids),
            CancelWatch(self.backend, self.worker_id, self._slots, get_settings().cancel_grace),
            Purger(self.backend),
            self._scheduler,
            DependencySweep(self.alias),
            UnknownTasks(self._missing, self._open_tags),
            *(duty for duty in (tidy, memory) if duty is not None),
        ]

    def _recycle(self, reason: str) -> None:
        if not self._recycle_reason:
            self._recycle_reason = reason
            logger.warning("Worker %s: %s; finishing running jobs, then recycling.", self.name, reason)

    def _stats(self) -> dict[str, int]:
        """What the worker row shows about this worker's work."""
        runaways = self._executor.runaways if self._executor else 0
        return {"jobs_done": self.jobs_done, "runaway_threads": runaways, "stopping_jobs": self._slots.stopping()}

    def _lease_ids(self) -> list[int]:
        """The jobs whose leases this worker renews: running here, or ended and not yet written."""
        return self._slots.ids() + self._settler.pending_ids()

    def _returned(self, attempt: Attempt) -> None:
        """Called by a job thread when the attempt's code has returned: its end to the settler, its slot back."""
        if attempt.settlement is not None:
            self._claims.note_hold(attempt.job, attempt.settlement)  # before the slot is free again
            self._settler.submit(attempt)
        self._slots.returned(attempt)
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
        return self._slots.busy or len(self._settler) > 0

    def _serve(self) -> None:
        while not self._stopping.is_set():
            # Cleared before looking at the state: a wake-up after this point is kept.
            self._wake.clear()
            self._idle.clear()
            now = time.monotonic()
            if time_out(self, now) and self.supervised:
                # Only ending the process stops the code for sure.
                exit_now(self, ExitCode.REPLACE, "a job timed out or was cancelled; replacing this process to stop it")
            # Take no new work while our leases are not being renewed (the fence ends running ones).
            self._fenced = self._fence is not None and not self._fence.claiming
            if self.supervised and supervisor_gone():
                logger.warning("Worker %s: its supervisor is gone; stopping.", self.name)
                self.stop()
                break
            # An end the settler writes after the claim below may have queued work.
            done_before = self.jobs_done
            try:
                # Which tags are paused must be known before claiming from them.
                again = self._paused.run(now) if now >= self._paused.next_at else False
                again = self._claim() or again
                again = self._run_duties(now) or again or self.jobs_done != done_before
            except DATABASE_ERRORS as error:
                self._trouble.failed(error)
                continue
            self._trouble.recovered()
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

    def _claim(self) -> bool:
        """Take back the slots of jobs that returned and claim what fits; True if there may be more now."""
        self._slots.take_returned()
        free = self._free_slots()
        if free <= 0:
            return False
        claimed = self._claims.take(free, self._start)
        if claimed:
            self._queue_empty_sent = False
        elif not self._busy and not self._queue_empty_sent and self._claims.retry_at is None:
            self._queue_empty_sent = True
            emit(queue_empty, self, tags=list(self.tags))
        return claimed >= free  # a full claim may leave more behind

    def _start(self, job: Job) -> None:
        self.jobs_claimed += 1
        try:
            attempt = execution.prepare(job, alias=self.alias, logs=self._logs, worker_name=self.name)
        except UnknownTask as error:
            self._missing.claimed(job, error)  # left for a newer worker, or failed (missing.py)
            self.jobs_claimed -= 1
            return
        except Exception as error:
            logger.exception("Job %s (%s) cannot start.", job.id, job.task)
            self._settler.submit(Ending(job, outcomes.failed(job, TaskOptions(), error)))
            return
        self._slots.add(attempt)
        self._executor.submit(attempt)  # type: ignore[union-attr]

    def _run_duties(self, now: float) -> bool:
        changed = self._upkeep.run(now)
        if self.feed is not None:
            changed = self.feed.maintain(self.interval) or changed
        return changed

    def _free_slots(self) -> int:
        if self._fenced or self._recycle_reason or self._stopping.is_set():
            return 0
        if len(self._settler) > 2 * self.concurrency:
            return 0  # the database is behind with our writes: do not take more
        free = self._slots.free
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
        if self.burst and self._free_slots() > 0 and self._claims.retry_at is None:
            logger.info("Worker %s found no runnable jobs; burst mode, stopping.", self.name)
            return True
        return False

    def _next_wait(self) -> float:
        now = time.monotonic()
        room = self._free_slots() > 0
        marks = [now + self.interval, self._paused.next_at]
        marks += self._upkeep.due_marks(room)
        if self._claims.retry_at is not None and room:
            marks.append(self._claims.retry_at)
        if self._slots.next_deadline is not None:
            marks.append(self._slots.next_deadline)
        return max(0.0, min(marks) - now)
