"""``kinetik.events()``: the live feed as an iterator (sync or async).

::

    with kinetik.events(tag="reports", timeout="10m") as feed:   # listening from here on
        job = kinetik.create("build report", data)
        for event in feed:
            if event.job_id == job.id and event.finished:
                break

A stream sees events published while it is open; there is no history (the
job's row, runs and logs are the history). Events from one process arrive in
the order they happened; events from different processes (the web process's
``created``, the worker's ``started``) may interleave: sort by ``at`` if that
matters.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable, Iterator
from types import TracebackType
from typing import Any

from asgiref.sync import sync_to_async
from django.core.exceptions import ImproperlyConfigured

from ..values.durations import parse_duration
from .event import KINDS, Event, Record
from .listener import Listener, listener

logger = logging.getLogger("django_kinetik.feed")

#: events a stream holds for a slow reader; beyond that the oldest are dropped
MAX_QUEUED = 10_000
#: how long entering a stream waits for its subscription to be in effect
READY_TIMEOUT = 5.0


def events(
    *,
    job: Any = None,
    tag: str | Iterable[str] | None = None,
    task: str | Iterable[str] | None = None,
    kinds: Iterable[str] | None = None,
    timeout: Any = None,
) -> EventStream:
    """A stream of live job events, optionally filtered.

    ``job`` is a job or a job id; ``tag``, ``task`` and ``kinds`` are one value
    or several (``kinds`` from :data:`~django_kinetik.feed.event.KINDS`).
    ``timeout`` (a duration: ``"30s"``, integer milliseconds, a ``timedelta``)
    ends the iteration that long after the stream started listening; without
    it, iterate until you break out or call :meth:`EventStream.close`. Enter
    it (``with`` / ``async with``) to be sure it listens before you go on:
    iterating waits for that too. The first stream of a process takes about
    a second to be listening (publishers check for followers that often).

    Raises ``ImproperlyConfigured`` when there is no feed: SQLite or MySQL
    without ``KINETIK["REDIS"]``.
    """
    shared = listener()
    if shared is None:
        raise ImproperlyConfigured(
            'Live job events need PostgreSQL or the Redis fast path: set KINETIK["REDIS"] '
            "(a redis:// URL or a django-redis cache alias), or keep the jobs in PostgreSQL."
        )
    wanted_kinds = None
    if kinds is not None:
        wanted_kinds = frozenset([kinds] if isinstance(kinds, str) else kinds)
        unknown = wanted_kinds - set(KINDS)
        if unknown:
            raise ValueError(f"Unknown event kind(s) {', '.join(sorted(unknown))}; the kinds are {', '.join(KINDS)}.")
    job_id = getattr(job, "pk", job)
    if job_id is not None and (isinstance(job_id, bool) or not isinstance(job_id, int)):
        raise TypeError(f"job must be a Job or a job id, not {type(job).__name__}")
    seconds = None if timeout is None else parse_duration(timeout, what="timeout")
    return EventStream(
        shared,
        job_id=job_id,
        tags=_names(tag),
        tasks=_names(task),
        kinds=wanted_kinds,
        timeout=seconds,
    )


def _names(value: str | Iterable[str] | None) -> frozenset[str] | None:
    if value is None:
        return None
    return frozenset([value] if isinstance(value, str) else value)


class EventStream:
    """Live events that pass the filters, from the moment the stream was opened.

    Iterate it (``for`` or ``async for``), or call :meth:`get` / :meth:`aget`
    to wait a bounded time (``None`` when nothing came). Close it when done
    (leaving a ``with`` block does), so the process stops queueing events for it.
    """

    def __init__(
        self,
        shared: Listener,
        *,
        job_id: int | None,
        tags: frozenset[str] | None,
        tasks: frozenset[str] | None,
        kinds: frozenset[str] | None,
        timeout: float | None,
    ) -> None:
        self.job_id = job_id
        self.tags = tags
        self.tasks = tasks
        self.kinds = kinds
        #: events dropped because the reader fell more than MAX_QUEUED behind
        self.dropped = 0
        self._listener = shared
        self._timeout = timeout
        #: set once listening (the timeout runs from then)
        self._deadline: float | None = None
        self._queue: deque[Event] = deque()
        self._arrived = threading.Event()
        self._ready = threading.Event()
        self._closed = False
        # (loop, event) of an async reader waiting now
        self._async_waiter: tuple[asyncio.AbstractEventLoop, asyncio.Event] | None = None
        shared.add_sink(self)

    # -- fed by the listener's thread ------------------------------------------

    def _accepts(self, record: Record) -> bool:
        return (
            (self.job_id is None or record[1] == self.job_id)
            and (self.kinds is None or record[0] in self.kinds)
            and (self.tags is None or record[3] in self.tags)
            and (self.tasks is None or record[2] in self.tasks)
        )

    def offer(self, records: list[Record]) -> None:
        accepted = [Event.from_record(record) for record in records if self._accepts(record)]
        if not accepted:
            return
        overflow = len(self._queue) + len(accepted) - MAX_QUEUED
        if overflow > 0:
            for _ in range(min(overflow, len(self._queue))):
                self._queue.popleft()
            self.dropped += overflow
            if self.dropped == overflow:
                logger.warning("An event stream's reader is falling behind; dropping its oldest events.")
        self._queue.extend(accepted)
        self._signal()

    def listening(self) -> None:
        if self._timeout is not None and self._deadline is None:
            self._deadline = time.monotonic() + self._timeout
        self._ready.set()
        self._signal()

    def _signal(self) -> None:
        self._arrived.set()
        waiter = self._async_waiter
        if waiter is not None:
            loop, event = waiter
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # that loop has closed
                pass

    # -- reading ---------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """Whether the subscription is in effect (events published from now on arrive)."""
        return self._ready.is_set()

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> bool:
        """Block until the stream listens; False if that took longer than ``timeout``."""
        return self._ready.wait(timeout)

    def _left(self, timeout: float | None) -> float | None:
        if self._deadline is None:
            # Not listening yet: wait no longer than the whole timeout.
            limits = [limit for limit in (timeout, self._timeout) if limit is not None]
            return min(limits) if limits else None
        left = max(0.0, self._deadline - time.monotonic())
        return left if timeout is None else min(timeout, left)

    def get(self, timeout: float | None = None) -> Event | None:
        """The next event, waiting at most ``timeout`` seconds (and never past the stream's own timeout)."""
        limit = self._left(timeout)
        deadline = None if limit is None else time.monotonic() + limit
        while not self._closed:
            # Cleared before looking: an event offered after this sets it again.
            self._arrived.clear()
            if self._queue:
                return self._queue.popleft()
            wait = None if deadline is None else deadline - time.monotonic()
            if wait is not None and wait <= 0:
                return None
            self._arrived.wait(wait)
        return None

    async def aget(self, timeout: float | None = None) -> Event | None:
        """:meth:`get` for async code; the event loop is never blocked."""
        loop = asyncio.get_running_loop()
        arrived = asyncio.Event()
        self._async_waiter = (loop, arrived)
        try:
            limit = self._left(timeout)
            deadline = None if limit is None else loop.time() + limit
            while not self._closed:
                arrived.clear()
                if self._queue:
                    return self._queue.popleft()
                wait = None if deadline is None else deadline - loop.time()
                if wait is not None and wait <= 0:
                    return None
                try:
                    await asyncio.wait_for(arrived.wait(), wait)
                except TimeoutError:
                    return None
            return None
        finally:
            self._async_waiter = None

    def close(self) -> None:
        """Stop receiving events; iteration ends."""
        if not self._closed:
            self._closed = True
            self._listener.remove_sink(self)
            self._signal()

    # -- protocols -------------------------------------------------------------

    def __iter__(self) -> Iterator[Event]:
        self.wait_ready()
        while True:
            event = self.get()
            if event is None:
                self.close()
                return
            yield event

    async def __aiter__(self) -> AsyncIterator[Event]:
        await self.await_ready()
        while True:
            event = await self.aget()
            if event is None:
                self.close()
                return
            yield event

    async def await_ready(self, timeout: float = READY_TIMEOUT) -> bool:
        """:meth:`wait_ready` for async code."""
        if self._ready.is_set():
            return True
        return await sync_to_async(self._ready.wait, thread_sensitive=False)(timeout)

    def __enter__(self) -> EventStream:
        self.wait_ready()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    async def __aenter__(self) -> EventStream:
        await self.await_ready()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        filters = {"job": self.job_id, "tags": self.tags, "tasks": self.tasks, "kinds": self.kinds}
        shown = ", ".join(
            f"{name}={sorted(value) if isinstance(value, frozenset) else value}"
            for name, value in filters.items()
            if value is not None
        )
        return f"<EventStream {shown or 'everything'}{' closed' if self._closed else ''}>"
