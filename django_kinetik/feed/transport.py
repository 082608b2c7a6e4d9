"""Where events travel: Redis pub/sub, or PostgreSQL LISTEN/NOTIFY.

``KINETIK["REDIS"]`` set: Redis, on the channels ``<prefix>:events`` and
``<prefix>:finished``. Otherwise, if the jobs' database is PostgreSQL: NOTIFY
on ``kinetik_events`` and ``kinetik_finished`` in that database. Otherwise
there is no transport.

Two channels, because most listeners want little: a view waiting on one job
listens only to "finished" (comma-separated ids of jobs that reached an end,
a few bytes per job), so it never decodes the whole feed of a busy queue.
And publishers ask whether anyone follows the full feed at all
(:meth:`Transport.has_audience`) before paying for it: Redis counts a
channel's subscribers; on PostgreSQL, which cannot tell who LISTENs, a
follower holds a shared advisory lock (:data:`PG_AUDIENCE_LOCK`) for as long
as it listens to the feed.

Each transport publishes a batch in one round trip, on a connection of its
own (a worker's and a view's connections stay free for their work, and
nothing is published inside their transactions), and opens the subscriber
connection a process's listener holds.
"""

from __future__ import annotations

import abc
import threading
import time
from collections.abc import Callable
from typing import Any

from ..backends import get_backend, statements
from ..backends.postgresql import EVENTS_CHANNEL, FINISHED_CHANNEL
from ..conf import KinetikSettings, get_settings

#: PostgreSQL's NOTIFY channels (the database is the namespace)
PG_EVENTS = EVENTS_CHANNEL
PG_FINISHED = FINISHED_CHANNEL
#: the advisory lock (two int4 keys: "kine", "tik") held, shared, by every PostgreSQL feed follower
PG_AUDIENCE_LOCK = (0x6B696E65, 0x74696B)

Handler = Callable[[str, str], None]


class Subscription(abc.ABC):
    """A connection listening to some channels; used by one thread only."""

    @abc.abstractmethod
    def listen(self, channel: str) -> None: ...

    @abc.abstractmethod
    def unlisten(self, channel: str) -> None: ...

    @abc.abstractmethod
    def listening(self) -> set[str]:
        """Channels the server has confirmed: messages published from now on arrive."""

    @abc.abstractmethod
    def receive(self, timeout: float, handle: Handler) -> None:
        """Pass each message that arrives within ``timeout`` seconds to ``handle(channel, payload)``."""

    @abc.abstractmethod
    def close(self) -> None: ...


class Transport(abc.ABC):
    """Publishes messages, and opens subscriptions, for one configuration."""

    #: what identifies this transport (two equal keys: the same channels)
    key: tuple[str, ...]
    events_channel: str
    finished_channel: str
    #: the largest message, in bytes
    payload_limit: int

    @abc.abstractmethod
    def publish(self, messages: list[tuple[str, str]]) -> None:
        """Send ``(channel, payload)`` messages in order, in one round trip; raises if the transport is down."""

    @abc.abstractmethod
    def has_audience(self) -> bool:
        """Whether some connection, in any process, listens to the full feed now."""

    @abc.abstractmethod
    def subscribe(self) -> Subscription:
        """A new connection of its own; the feed channel's listeners count as audience."""

    @abc.abstractmethod
    def close(self) -> None:
        """Close the publishing connection (it reopens on the next publish)."""


class RedisTransport(Transport):
    # Redis takes far more, but a listener decodes each message whole.
    payload_limit = 256 * 1024

    def __init__(self, where: str, prefix: str) -> None:
        from ..fastpath.connection import key

        self.key = ("redis", where, prefix)
        # Named like the fast path's keys (made while these settings are current).
        self.events_channel = key("events")
        self.finished_channel = key("finished")

    def _client(self) -> Any:
        from ..fastpath.connection import redis_client

        return redis_client()

    def publish(self, messages: list[tuple[str, str]]) -> None:
        pipeline = self._client().pipeline(transaction=False)
        for channel, payload in messages:
            pipeline.publish(channel, payload)
        pipeline.execute()

    def has_audience(self) -> bool:
        ((_, count),) = self._client().pubsub_numsub(self.events_channel)
        return bool(count)

    def subscribe(self) -> Subscription:
        return _RedisSubscription(self._client().pubsub())

    def close(self) -> None:
        pass  # publishing borrows the fast path's client, whose pool owns the connections


#: how often a Redis listener behind Sentinel asks whether its server is still the master
_MASTER_CHECK_EVERY = 1.0


class _RedisSubscription(Subscription):
    def __init__(self, pubsub: Any) -> None:
        self._pubsub = pubsub
        self._confirmed: set[str] = set()
        self._next_master_check = time.monotonic() + _MASTER_CHECK_EVERY

    def listen(self, channel: str) -> None:
        self._pubsub.subscribe(channel)

    def unlisten(self, channel: str) -> None:
        self._pubsub.unsubscribe(channel)
        self._confirmed.discard(channel)

    def listening(self) -> set[str]:
        return self._confirmed

    def receive(self, timeout: float, handle: Handler) -> None:
        if time.monotonic() >= self._next_master_check:
            from ..fastpath.connection import follow_the_master

            self._next_master_check = time.monotonic() + _MASTER_CHECK_EVERY
            if follow_the_master(self._pubsub.connection):
                # Publishers follow the new master; the listener reconnects there (and every wait re-reads).
                raise ConnectionError("the Redis master moved (Sentinel failover)")
        message = self._pubsub.get_message(timeout=timeout)
        # Then whatever else has arrived, but not forever: the owner has other work between calls.
        for _ in range(1000):
            if message is None:
                return
            channel = _text(message["channel"])
            if message["type"] == "message":
                handle(channel, _text(message["data"]))
            elif message["type"] == "subscribe":
                self._confirmed.add(channel)
            message = self._pubsub.get_message(timeout=0)

    def close(self) -> None:
        self._pubsub.close()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class PostgresTransport(Transport):
    # NOTIFY refuses a payload of 8000 bytes or more.
    payload_limit = 7900

    def __init__(self, alias: str) -> None:
        self.key = ("postgresql", alias)
        self.alias = alias
        self.events_channel = PG_EVENTS
        self.finished_channel = PG_FINISHED
        self._connection: Any = None
        self._lock = threading.Lock()

    def connect(self, purpose: str = "events") -> Any:
        """A new autocommit psycopg connection to the jobs' database, outside Django's pool."""
        return get_backend(self.alias).connect_apart(purpose)  # type: ignore[attr-defined]

    def publish(self, messages: list[tuple[str, str]]) -> None:
        with self._lock:
            if self._connection is None or self._connection.closed:
                self._connection = self.connect("event publisher")
            try:
                # One statement for the whole batch; NOTIFYs from one transaction arrive in order.
                self._connection.execute(
                    statements.FEED_PUBLISH,
                    [[channel for channel, _ in messages], [payload for _, payload in messages]],
                )
            except Exception:
                self._connection.close()
                self._connection = None
                raise

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    def has_audience(self) -> bool:
        with self._lock:
            if self._connection is None or self._connection.closed:
                self._connection = self.connect("event publisher")
            try:
                row = self._connection.execute(statements.FEED_HAS_AUDIENCE, PG_AUDIENCE_LOCK).fetchone()
            except Exception:
                self._connection.close()
                self._connection = None
                raise
        return bool(row[0])

    def subscribe(self) -> Subscription:
        return _PostgresSubscription(self.connect("event listener"))


class _PostgresSubscription(Subscription):
    def __init__(self, connection: Any) -> None:
        self._connection = connection
        self._listening: set[str] = set()

    def listen(self, channel: str) -> None:
        self._connection.execute(statements.listen(channel))
        if channel == PG_EVENTS:
            # Publishers see this lock and start sending full events; it goes with the connection.
            self._connection.execute(statements.FEED_JOIN_AUDIENCE, PG_AUDIENCE_LOCK)
        self._listening.add(channel)  # LISTEN returned: it is in effect

    def unlisten(self, channel: str) -> None:
        self._connection.execute(statements.unlisten(channel))
        if channel == PG_EVENTS:
            self._connection.execute(statements.FEED_LEAVE_AUDIENCE, PG_AUDIENCE_LOCK)
        self._listening.discard(channel)

    def listening(self) -> set[str]:
        return self._listening

    def receive(self, timeout: float, handle: Handler) -> None:
        for notice in self._connection.notifies(timeout=timeout):
            handle(notice.channel, notice.payload)

    def close(self) -> None:
        self._connection.close()


_lock = threading.Lock()
_transports: dict[tuple[str, ...], Transport] = {}
#: (the settings it was chosen for, the transport): settings are replaced, never changed, when they change
_chosen: tuple[KinetikSettings | None, Transport | None] = (None, None)


def current() -> Transport | None:
    """The transport the current settings select, or None (SQLite or MySQL without Redis)."""
    global _chosen
    settings = get_settings()
    chosen_for, transport = _chosen
    if chosen_for is settings:
        return transport
    transport = _choose(settings)
    _chosen = (settings, transport)
    return transport


def _choose(settings: KinetikSettings) -> Transport | None:
    if settings.redis:
        key: tuple[str, ...] = ("redis", settings.redis, settings.redis_prefix)
    elif get_backend(settings.database).supports_notify:
        key = ("postgresql", settings.database)
    else:
        return None
    with _lock:
        transport = _transports.get(key)
        if transport is None:
            transport = _transports[key] = (
                RedisTransport(settings.redis, settings.redis_prefix)
                if settings.redis
                else PostgresTransport(settings.database)
            )
        return transport


def all_transports() -> list[Transport]:
    with _lock:
        return list(_transports.values())
