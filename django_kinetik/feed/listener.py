"""One subscriber connection per process, shared by every wait and event stream.

A view that waits on a job must not open a connection per request, so the
first wait (or ``events()`` stream) starts a daemon thread holding one
subscription: it always listens to the "finished" channel, and to the full
feed only while some stream wants it (and, in a worker, :data:`FEED_LINGER`
seconds more, so the next stream is ready at once). It hands job ids to the waits watching
them and events to the streams whose filters they pass. With nothing to serve
for :data:`~.lifetime.KEEP_IDLE` seconds (in a worker,
:data:`~.lifetime.WORKER_KEEP_IDLE`) it closes its connection and ends; the
next user starts it again.

Publishers send full events only once they have seen that someone follows
the feed, which they check every :data:`~.publishing.AUDIENCE_TTL` seconds:
a stream counts as listening only that long after the feed channel is, so
it misses nothing published after it was told so.

A lost connection is retried with backoff. Messages published meanwhile are
lost, so when it is listening again every wait is woken to re-read its row
(and streams carry on: the feed is best-effort).
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

from . import lifetime
from .event import Record, decode
from .publishing import AUDIENCE_TTL
from .transport import Subscription, Transport, current

logger = logging.getLogger("django_kinetik.feed")

#: how long one receive blocks: the longest a new stream waits to be listening
TICK = 0.05
#: the feed stays listened to this long after the last stream closed
FEED_LINGER = 20.0


class Sink(Protocol):
    """What the listener feeds events to (an :class:`~.stream.EventStream`)."""

    def offer(self, records: list[Record]) -> None: ...

    def listening(self) -> None: ...


class Watch:
    """A wait's registration: ``notify`` is called when the job may have finished.

    ``notify`` runs in the listener's thread and must be quick (set an event).
    """

    def __init__(self, listener: Listener, job_id: int, notify: Callable[[], None]) -> None:
        self.listener = listener
        self.job_id = job_id
        self.notify = notify

    @property
    def live(self) -> bool:
        """Whether notifications arrive now (if not, the waiter should poll)."""
        return self.listener.ready.is_set()

    def close(self) -> None:
        self.listener.unwatch(self)


class Listener:
    """The shared subscription for one transport, and the thread that reads it."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        #: set while the "finished" channel is listened to
        self.ready = threading.Event()
        self._lock = threading.Lock()
        self._watches: dict[int, set[Watch]] = {}
        self._sinks: set[Sink] = set()
        #: sinks told nothing yet: they learn when the feed channel is listened to
        self._new_sinks: set[Sink] = set()
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()
        self._last_used = time.monotonic()
        self._last_sink = 0.0

    # -- used by waits and streams -------------------------------------------

    def watch(self, job_id: int, notify: Callable[[], None]) -> Watch:
        watch = Watch(self, job_id, notify)
        with self._lock:
            self._watches.setdefault(job_id, set()).add(watch)
            self._ensure_running()
        return watch

    def unwatch(self, watch: Watch) -> None:
        with self._lock:
            watches = self._watches.get(watch.job_id)
            if watches is not None:
                watches.discard(watch)
                if not watches:
                    del self._watches[watch.job_id]
            self._last_used = time.monotonic()

    def add_sink(self, sink: Sink) -> None:
        with self._lock:
            self._sinks.add(sink)
            self._new_sinks.add(sink)
            self._ensure_running()

    def remove_sink(self, sink: Sink) -> None:
        with self._lock:
            self._sinks.discard(sink)
            self._new_sinks.discard(sink)
            self._last_used = self._last_sink = time.monotonic()

    def _ensure_running(self) -> None:
        if self._thread is None:
            self._stopped.clear()
            self._thread = threading.Thread(target=self._run, name="kinetik-events-listener", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """End the thread and close its connection (for tests and shutdown)."""
        self._stopped.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=2)

    # -- the thread ------------------------------------------------------------

    def _run(self) -> None:
        pause = 0.2
        try:
            while not self._should_end():
                try:
                    subscription = self.transport.subscribe()
                except Exception as error:
                    logger.warning("The job event listener cannot connect (%s); retrying in %.1fs.", error, pause)
                    self._stopped.wait(pause)
                    pause = min(pause * 2, 5.0)
                    continue
                try:
                    self._serve(subscription)
                    return
                except Exception as error:
                    if not self._stopped.is_set() and not self._retired():
                        logger.warning("The job event listener lost its connection (%s); reconnecting.", error)
                finally:
                    self._lost()
                    try:
                        subscription.close()
                    except Exception:
                        pass
                pause = 0.2
                self._stopped.wait(pause)
        finally:
            self.ready.clear()

    def _serve(self, subscription: Subscription) -> None:
        transport = self.transport
        subscription.listen(transport.finished_channel)
        feed = False
        #: when the feed channel was confirmed: publishers know of us AUDIENCE_TTL later
        feed_since: float | None = None
        while not self._should_end():
            now = time.monotonic()
            with self._lock:
                if self._sinks:
                    self._last_sink = now
                wanted = now - self._last_sink < FEED_LINGER
            if wanted != feed:
                (subscription.listen if wanted else subscription.unlisten)(transport.events_channel)
                feed, feed_since = wanted, None
            listening = subscription.listening()
            if transport.finished_channel in listening and not self.ready.is_set():
                self.ready.set()
                # Anything published before now was missed: every wait re-reads its row.
                self._wake_all()
            if feed and feed_since is None and transport.events_channel in listening:
                feed_since = now
            # A little more than the TTL: a publisher's answer may be that old when it is used.
            if feed_since is not None and now >= feed_since + AUDIENCE_TTL + 0.1 and self._new_sinks:
                with self._lock:
                    told, self._new_sinks = self._new_sinks, set()
                for sink in told:
                    sink.listening()
            subscription.receive(TICK, self._dispatch)

    def _should_end(self) -> bool:
        """Stopped, idle for long enough, or no longer configured (settings changed).

        Decided under the lock, and the thread forgotten at once, so a wait
        that arrives now starts a new thread instead of relying on this one.
        """
        retired = self._retired()
        with self._lock:
            idle = not self._watches and not self._sinks
            unused_for = time.monotonic() - self._last_used
            if self._stopped.is_set() or retired or (idle and unused_for >= lifetime.keep_idle()):
                self._thread = None
                return True
            if not idle:
                self._last_used = time.monotonic()
            return False

    def _retired(self) -> bool:
        """Whether the settings no longer select this transport (tests change them)."""
        try:
            return current() is not self.transport
        except Exception:  # settings that do not even parse select nothing
            return True

    def _lost(self) -> None:
        self.ready.clear()
        with self._lock:
            self._new_sinks |= self._sinks  # told again once listening again
        self._wake_all()

    def _wake_all(self) -> None:
        with self._lock:
            watches = [watch for watches in self._watches.values() for watch in watches]
        for watch in watches:
            self._notify(watch)

    def _dispatch(self, channel: str, payload: str) -> None:
        if channel == self.transport.finished_channel:
            with self._lock:
                watches = [
                    watch
                    for job_id in payload.split(",")
                    if job_id.isdigit()
                    for watch in self._watches.get(int(job_id), ())
                ]
            for watch in watches:
                self._notify(watch)
        elif channel == self.transport.events_channel:
            with self._lock:
                sinks = list(self._sinks)
            if not sinks:
                return  # lingering: nobody to decode it for
            try:
                records = decode(payload)
            except ValueError:
                logger.warning("Ignored a message on %s that is not a kinetik event.", channel)
                return
            for sink in sinks:
                try:
                    sink.offer(records)
                except Exception:
                    logger.exception("An event stream failed to take events.")

    @staticmethod
    def _notify(watch: Watch) -> None:
        try:
            watch.notify()
        except Exception:  # an async waiter whose event loop has closed
            logger.debug("Could not wake a wait on job %s.", watch.job_id, exc_info=True)


_lock = threading.Lock()
_listeners: dict[tuple[str, ...], Listener] = {}
_exit_hooked = False


def listener() -> Listener | None:
    """This process's listener for the configured transport; None when there is no feed."""
    transport = current()
    if transport is None:
        return None
    with _lock:
        found = _listeners.get(transport.key)
        if found is None:
            global _exit_hooked
            if not _exit_hooked:
                atexit.register(close_listeners)  # the connection goes before the process does
                _exit_hooked = True
            found = _listeners[transport.key] = Listener(transport)
        return found


def close_listeners() -> None:
    """Stop every listener thread; waits and streams still open fall back to re-reading."""
    with _lock:
        listeners = list(_listeners.values())
        _listeners.clear()
    for each in listeners:
        each.stop()
