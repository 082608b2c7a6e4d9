"""``job.wait()`` and ``await job.await_result()``: until a job finishes (Kickq's hot jobs).

With a live feed (Redis, or PostgreSQL NOTIFY; see :mod:`.feed`) a wait sleeps
until the worker announces the job's end, then reads the row once: a view can
create a job and answer with its result a few milliseconds after it is done,
without polling. The announcement is published after the end is committed,
so that read sees the final state. A wait that finds the job unfinished registers
with the process's shared listener and only then reads the row again, so an
end between the two reads is not missed.

The row stays the truth: a wait also re-reads it every :data:`REREAD`
seconds, because an announcement can be lost (the transport was down, the
listener was reconnecting). Without a feed on SQLite, a wait watches the
database file's commit counter (``PRAGMA data_version``, a few microseconds a
look) every :data:`COMMIT_WATCH` seconds and re-reads the row only when
another connection has committed. Elsewhere without a feed (MySQL without
Redis), or while the listener is not connected, it polls the row with a gently
growing pause, capped at ``poll`` times eight: a cheap primary-key read.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import TYPE_CHECKING, Any

from .exceptions import JobCancelled, JobFailed, WaitTimeout
from .values.durations import parse_duration

if TYPE_CHECKING:
    from collections.abc import Callable

    from .feed.listener import Watch
    from .models import Job

#: the slowest a wait re-reads the row while it relies on notifications
REREAD = 1.0
#: how often a wait on SQLite looks at the commit counter
COMMIT_WATCH = 0.005

_FIELDS = ["status", "result", "error", "error_code", "finished_at"]


def _finished(job: Job) -> bool:
    """True if the job completed; raise if it ended otherwise; False while it is not done."""
    from .models import Status

    if job.status == Status.COMPLETED:
        return True
    if job.status in (Status.FAILED, Status.TIMEOUT):
        raise JobFailed(job)
    if job.status == Status.CANCELLED:
        raise JobCancelled(job)
    return False


def _watch(job: Job, notify: Callable[[], None]) -> Watch | None:
    """Register for the job's end with the shared listener; None without a feed."""
    from .feed.listener import listener

    shared = listener()
    return None if shared is None else shared.watch(job.pk, notify)


class _Pace:
    """How long to sleep before the next read: long with notifications, short without."""

    def __init__(self, timeout: Any, poll: Any, now: float) -> None:
        self.limit = None if timeout is None else parse_duration(timeout, what="timeout")
        # Milliseconds like every duration in Python; a few of them is the point here, so no warning.
        poll = parse_duration(poll, what="poll", warn=False)
        if poll <= 0:
            raise ValueError("poll must be longer than zero, e.g. poll='50ms'")
        self.deadline = None if self.limit is None else now + self.limit
        self.poll = poll
        self.pause = poll

    def left(self, now: float) -> float:
        """Seconds until the wait times out (infinity without a timeout)."""
        return float("inf") if self.deadline is None else max(0.0, self.deadline - now)

    def next(self, watch: Watch | None, now: float) -> float | None:
        """Seconds to sleep, or None when the wait has run out of time."""
        if watch is not None and watch.live:
            pause = REREAD
        else:
            pause = self.pause
            self.pause = min(self.pause * 1.5, self.poll * 8)
        if self.deadline is not None:
            left = self.deadline - now
            if left <= 0:
                return None
            pause = min(pause, left)
        return pause


def _commit_watch(job: Job) -> Callable[[], Any] | None:
    """A look at the commit counter of the job's database, where it has one (SQLite)."""
    from .backends import get_backend

    backend = get_backend(job._state.db)
    return backend.commit_counter() if backend.supports_commit_watch else None


def _sleep_until_a_commit(look: Callable[[], Any], seen: Any, pause: float) -> None:
    """Sleep up to ``pause``, returning early once another connection has committed since ``seen``."""
    deadline = time.monotonic() + pause
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(COMMIT_WATCH, left))
        if look() != seen:
            return


def wait_for(job: Job, timeout: Any, poll: Any) -> Any:
    pace = _Pace(timeout, poll, time.monotonic())
    # A job that is already over needs no listener (nor its connection).
    job.refresh_from_db(fields=_FIELDS)
    if _finished(job):
        return job.result
    woken = threading.Event()
    watch = _watch(job, woken.set)
    look = _commit_watch(job) if watch is None else None
    try:
        while True:
            # Cleared (and the commit counter read) before reading the row: an
            # announcement or a commit from here on is not lost.
            woken.clear()
            seen = look() if look is not None else None
            job.refresh_from_db(fields=_FIELDS)
            if _finished(job):
                return job.result
            pause = pace.next(watch, time.monotonic())
            if pause is None:
                raise WaitTimeout(job, pace.limit or 0.0, job.status)
            if look is not None:
                _sleep_until_a_commit(look, seen, min(REREAD, pace.left(time.monotonic())))
            else:
                woken.wait(pause)
    finally:
        if watch is not None:
            watch.close()


async def await_for(job: Job, timeout: Any, poll: Any) -> Any:
    loop = asyncio.get_running_loop()
    pace = _Pace(timeout, poll, time.monotonic())
    await job.arefresh_from_db(fields=_FIELDS)
    if _finished(job):
        return job.result
    woken = asyncio.Event()

    def notify() -> None:  # called from the listener's thread
        loop.call_soon_threadsafe(woken.set)

    watch = _watch(job, notify)
    try:
        while True:
            woken.clear()
            await job.arefresh_from_db(fields=_FIELDS)
            if _finished(job):
                return job.result
            pause = pace.next(watch, time.monotonic())
            if pause is None:
                raise WaitTimeout(job, pace.limit or 0.0, job.status)
            try:
                await asyncio.wait_for(woken.wait(), pause)
            except TimeoutError:
                pass
    finally:
        if watch is not None:
            watch.close()
