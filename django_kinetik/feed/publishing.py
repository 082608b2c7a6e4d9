"""Publishing events without slowing the queue down.

The hooks below are called where things happen (a job created, started,
logging, settled). They only append to an in-memory buffer: no encoding, no
I/O, nothing that can raise into job code or the worker. A publisher thread,
one per process and transport, takes everything buffered and sends it in one
round trip (one PUBLISH pipeline, or one ``SELECT pg_notify(...)``) on a
connection of its own, at most every :data:`SPACING` seconds: an event alone
goes out at once, and under load batches grow by themselves. With nothing to
send for :data:`~.lifetime.KEEP_IDLE` seconds (in a worker,
:data:`~.lifetime.WORKER_KEEP_IDLE`), the thread closes its connection and
ends; the next event starts it again.

Two streams, priced differently:

- the ids of jobs that ended go out always, a few bytes each: a wait
  anywhere may need them, and nobody can tell in advance;
- full events go out only while some process follows the feed (an
  ``events()`` stream, an SSE client). Building, encoding and sending them
  is most of the cost, which a worker draining thousands of jobs a second
  should not pay for an empty room. Whether anyone follows is asked of the
  transport at most every :data:`AUDIENCE_TTL` seconds (and only while there
  are events); a new follower waits that long before it counts as listening
  (see :mod:`.listener`), so no event it should see is skipped.

When the transport is down, batches are dropped (with a warning per
outage): the feed is best-effort, and waiters re-read the row anyway. The
buffers are bounded, so a long outage costs memory only up to
:data:`MAX_BUFFERED` events.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from functools import partial
from typing import TYPE_CHECKING, Any

from django.db import connections

from ..conf import KinetikSettings, get_settings
from . import lifetime
from .event import Record, cut, encode, encode_ids
from .transport import PostgresTransport, Transport, all_transports, current

if TYPE_CHECKING:
    from ..backends.base import Settlement
    from ..context import JobContext
    from ..models import Job

logger = logging.getLogger("django_kinetik.feed")

#: shortest time between two sends: how batches form under load
SPACING = 0.025
#: events kept while the transport is slow or down; older ones are dropped first
MAX_BUFFERED = 100_000
#: how long an answer to "does anyone follow the feed?" is trusted
AUDIENCE_TTL = 1.0

_FINAL_KIND = {"completed": "completed", "failed": "failed", "timeout": "timeout"}


class Publisher:
    """The buffers and the thread that publishes them, for one transport."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        #: events and ids dropped in the current outage
        self.dropped = 0
        self._events: deque[Record] = deque(maxlen=MAX_BUFFERED)
        self._finished: deque[int] = deque(maxlen=MAX_BUFFERED)
        self._wake = threading.Event()
        #: finished ids are waiting: cut the pause between sends short
        self._urgent = threading.Event()
        self._sending = False
        self._failing_since: float | None = None
        # Unknown at first: events are built until the thread has asked.
        self._audience = True
        self._audience_until = 0.0
        #: whether a publishing thread is alive (or about to be): it ends when idle
        self._running = False
        self._start_lock = threading.Lock()

    def wants_events(self) -> bool:
        """Whether full events are worth building: someone follows the feed, or it is time to ask again."""
        return self._audience or time.monotonic() >= self._audience_until

    def put(self, record: Record) -> None:
        self._events.append(record)
        if not self._wake.is_set():  # set() takes a lock; under load most puts find it set
            self._wake.set()
        if not self._running:
            self._start()

    def put_many(self, records: Iterable[Record]) -> None:
        self._events.extend(records)
        self._wake.set()
        if not self._running:
            self._start()

    def finished(self, job_id: int) -> None:
        """A job reached its end (and that is committed): wake whoever waits on it.

        Sent without waiting out :data:`SPACING`: a view waiting for this job
        is the latency that matters most.
        """
        self._finished.append(job_id)
        if not self._urgent.is_set():
            self._urgent.set()
        if not self._wake.is_set():
            self._wake.set()
        if not self._running:
            self._start()

    def _start(self) -> None:
        with self._start_lock:
            if not self._running:
                self._running = True
                threading.Thread(target=self._run, name="kinetik-publisher", daemon=True).start()

    def _run(self) -> None:
        while True:
            if not self._wake.wait(lifetime.keep_idle()) and self._end():
                return
            # Cleared before draining: anything appended from here on sets them again.
            self._wake.clear()
            self._urgent.clear()
            records = _drain(self._events)
            ids = _drain(self._finished)
            if records or ids:
                self._sending = True
                try:
                    self._send(records, ids)
                finally:
                    self._sending = False
                self._urgent.wait(SPACING)
                self._urgent.clear()

    def _end(self) -> bool:
        """Idle: close the connection and end the thread, unless something arrived meanwhile.

        A put that arrives after ``_running`` is cleared starts a new thread;
        one that arrived just before is found here, and this thread goes on.
        """
        self.transport.close()
        with self._start_lock:
            self._running = False
        if not (self._events or self._finished):
            return True
        with self._start_lock:
            if self._running:  # a put already started the next thread
                return True
            self._running = True
            return False

    def _send(self, records: list[Record], ids: list[int]) -> None:
        transport = self.transport
        limit = transport.payload_limit
        try:
            if records and time.monotonic() >= self._audience_until:
                asked = time.monotonic()  # the answer holds from before the question
                self._audience = transport.has_audience()
                self._audience_until = asked + AUDIENCE_TTL
            messages = []
            if records and self._audience:
                messages += [(transport.events_channel, payload) for payload in encode(records, limit)]
            if ids:
                messages += [(transport.finished_channel, payload) for payload in encode_ids(ids, limit)]
            if messages:
                transport.publish(messages)
        except Exception as error:
            self.dropped += len(records) + len(ids)
            if self._failing_since is None:
                self._failing_since = time.monotonic()
                logger.warning(
                    "Could not publish job events (%s: %s); dropping them until it works again.",
                    type(error).__name__,
                    error,
                )
            return
        if self._failing_since is not None:
            logger.warning(
                "Publishing job events works again after %.1fs; %d event(s) were dropped.",
                time.monotonic() - self._failing_since,
                self.dropped,
            )
            self._failing_since = None
            self.dropped = 0

    def flush(self, timeout: float = 2.0) -> bool:
        """Wait until everything buffered so far has been sent (or dropped); False on timeout."""
        deadline = time.monotonic() + timeout
        while self._events or self._finished or self._sending:
            if time.monotonic() >= deadline:
                return False
            self._wake.set()
            if not self._running:
                self._start()
            time.sleep(0.002)
        return True


def _drain(buffer: deque[Any]) -> list[Any]:
    items = []
    while buffer:
        items.append(buffer.popleft())
    return items


_lock = threading.Lock()
_publishers: dict[tuple[str, ...], Publisher] = {}
#: (the settings it was found for, the publisher): the hooks' fast path
_found: tuple[KinetikSettings | None, Publisher | None] = (None, None)


def publisher() -> Publisher | None:
    """This process's publisher for the configured transport; None when there is no feed."""
    global _found
    settings = get_settings()
    found_for, found = _found
    if found_for is settings:
        return found
    transport = current()
    if transport is None:
        found = None
    else:
        with _lock:
            found = _publishers.get(transport.key)
            if found is None:
                if not _publishers:
                    # Events still buffered when the process ends normally go out first.
                    atexit.register(close_publishers)
                found = _publishers[transport.key] = Publisher(transport)
    _found = (settings, found)
    return found


def close_publishers() -> None:
    """Send what is buffered, then close the publishing connections."""
    with _lock:
        publishers = list(_publishers.values())
    for each in publishers:
        each.flush()
    for transport in all_transports():
        transport.close()


# -- the hooks ---------------------------------------------------------------
#
# Each catches everything: an event is never worth a failed job or a stopped worker.


def created(jobs: list[Job]) -> None:
    """Jobs were inserted (and that is committed)."""
    try:
        target = publisher()
        if target is not None and jobs and target.wants_events():
            at = time.time_ns() // 1_000_000
            target.put_many(["created", job.id, job.task, job.tag, job.status, at, 0, None] for job in jobs)
    except Exception:
        logger.exception("Could not publish created events.")


def started(job: Job) -> None:
    try:
        target = publisher()
        if target is not None and target.wants_events():
            target.put(
                ["started", job.id, job.task, job.tag, "active", time.time_ns() // 1_000_000, job.attempts, None]
            )
    except Exception:
        logger.exception("Could not publish a started event.")


def progress(
    context: JobContext,
    using: str,
    current: float,
    total: float,
    data: Any,
    *,
    in_turn: Callable[[Callable[[], None]], None] | None = None,
) -> None:
    """The job reported progress (its row says so once the job's transaction, if any, commits).

    ``in_turn`` is given the sending, to hold it back until the job's earlier
    log lines are announced (a worker's batched log writer).
    """
    try:
        target = publisher()
        if target is not None and target.wants_events():
            extra: dict[str, Any] = {"current": current, "total": total}
            if data is not None:
                extra["data"] = data
            record = ["progress", *_running(context), extra]
            send = partial(target.put, record)
            _after_commit(using, send if in_turn is None else partial(in_turn, send))
    except Exception:
        logger.exception("Could not publish a progress event.")


def logged(context: JobContext, using: str, log_id: int | None, message: str, data: Any) -> None:
    """The job wrote a log line."""
    try:
        target = publisher()
        if target is not None and target.wants_events():
            extra: dict[str, Any] = {"message": cut(message), "log_id": log_id}
            if data is not None:
                extra["data"] = data
            _after_commit(using, partial(target.put, ["log", *_running(context), extra]))
    except Exception:
        logger.exception("Could not publish a log event.")


def _running(context: JobContext) -> list[Any]:
    return [context.id, context.task, context.tag, "active", time.time_ns() // 1_000_000, context.attempt]


def _after_commit(using: str, send: Callable[[], None]) -> None:
    # Job code may log inside its own transaction.atomic(): announce the line
    # only if it commits. (Not transaction.on_commit itself: it raises when
    # the job turned autocommit off.)
    connection = connections[using]
    if connection.in_atomic_block:
        connection.on_commit(send)
    else:
        send()


def finished_by_database(using: str) -> bool:
    """Whether the feed travels through the database ``using`` (PostgreSQL NOTIFY, no Redis).

    Then a settle can send the "finished" message itself, in its own
    statement, and :func:`ended` is told so.
    """
    transport = current()
    return isinstance(transport, PostgresTransport) and transport.alias == using


def ended(job: Job, settlement: Settlement, *, announced: bool = False) -> None:
    """An attempt's end is written (committed): completed, failed, timed out, or retrying.

    ``announced``: the write already sent the "finished" message for it.
    """
    try:
        target = publisher()
        if target is None:
            return
        # A Status is a str: it looks itself up.
        kind = _FINAL_KIND.get(settlement.status)
        if kind is not None and not announced:
            target.finished(job.id)
        if not target.wants_events():
            return
        extra: dict[str, Any] | None = None
        if kind != "completed":
            kind = kind or "retrying"
            extra = {"error": cut(settlement.error)}
            if settlement.error_code:
                extra["error_code"] = settlement.error_code
            if settlement.run_at is not None and kind == "retrying":
                extra["run_at"] = int(settlement.run_at.timestamp() * 1000)
        status = str(settlement.status)
        target.put([kind, job.id, job.task, job.tag, status, time.time_ns() // 1_000_000, job.attempts, extra])
    except Exception:
        logger.exception("Could not publish the end of job %s.", getattr(job, "pk", "?"))


def cancelled(jobs: Iterable[Job]) -> None:
    """Jobs were cancelled (and that is committed)."""
    try:
        target = publisher()
        if target is None:
            return
        rows = [(job.id, job.task, job.tag, job.attempts) for job in jobs]
        for job_id, *_ in rows:
            target.finished(job_id)
        if rows and target.wants_events():
            at = time.time_ns() // 1_000_000
            target.put_many(
                ["cancelled", pk, task, tag, "cancelled", at, attempts, None] for pk, task, tag, attempts in rows
            )
    except Exception:
        logger.exception("Could not publish cancelled events.")
