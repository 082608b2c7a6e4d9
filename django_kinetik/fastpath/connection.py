"""The Redis client for ``KINETIK["REDIS"]``, and the names of kinetik's keys.

``KINETIK["REDIS"]`` is a django-redis cache alias (the project's Redis
settings, reused, Sentinel ones too), a ``redis://`` URL, or a
``redis+sentinel://`` URL (``values/redis_location.py``). Every key and channel starts with
``KINETIK["REDIS_PREFIX"]`` (default ``kinetik``) so several projects can
share one Redis.
"""

from __future__ import annotations

import threading
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from ..conf import get_settings
from ..values import redis_location

_lock = threading.Lock()
_clients: dict[str, Any] = {}
_scripts: dict[tuple[str, str], Any] = {}

_errors: tuple[type[BaseException], ...] | None = None


def redis_errors() -> tuple[type[BaseException], ...]:
    """The errors that mean "Redis is not there right now": callers fall back to the database.

    A function, so that a project without Redis never imports the redis
    package (6 MB of a worker's memory): it is only called once a Redis call
    has raised.
    """
    global _errors
    if _errors is None:
        try:
            from redis.exceptions import ConnectionError as _ConnectionError
            from redis.exceptions import RedisError
            from redis.exceptions import TimeoutError as _TimeoutError

            _errors = (RedisError, _ConnectionError, _TimeoutError, OSError)
        except ImportError:  # redis is an optional dependency
            _errors = (OSError,)
    return _errors


def enabled() -> bool:
    """Whether the Redis fast path is configured."""
    return bool(get_settings().redis)


def redis_client() -> Any:
    """A thread-safe ``redis.Redis`` for the configured fast path (one per process)."""
    where = get_settings().redis
    if not where:
        raise RuntimeError('KINETIK["REDIS"] is not set; the Redis fast path is off.')
    client = _clients.get(where)
    if client is None:
        with _lock:
            client = _clients.get(where)
            if client is None:
                client = _clients[where] = _connect(where)
    return client


def _connect(where: str) -> Any:
    try:
        import redis
    except ImportError:
        raise RuntimeError(
            'KINETIK["REDIS"] is set but the redis package is not installed: pip install "django-kinetik[redis]".'
        ) from None
    if redis_location.is_sentinel_url(where):
        client = _sentinel_master(redis_location.parse_sentinel_url(where))
    elif "://" in where:
        client = redis.Redis.from_url(where)
    else:
        from django_redis import get_redis_connection

        client = get_redis_connection(where)
    _refuse_a_cluster(client)
    return client


def _sentinel_master(location: redis_location.SentinelLocation) -> Any:
    """A client of the master the Sentinels name, that follows it when they fail over.

    redis-py's Sentinel pool asks the Sentinels for the master's address on each
    new connection, and drops a connection whose server answers READONLY (a
    demoted master); Sentinel itself closes every client of the old master when
    it reconfigures it. So a failover is a connection error, which the fast path
    treats as Redis being down for a moment (the database claims meanwhile), and
    the next connection is to the new master.
    """
    from redis.sentinel import Sentinel

    sentinel = Sentinel(
        location.sentinels,
        # A Sentinel that does not answer within a second is skipped for the next.
        socket_timeout=None,
        sentinel_kwargs={
            "socket_timeout": 1.0,
            "socket_connect_timeout": 1.0,
            "username": location.sentinel_username,
            "password": location.sentinel_password,
        },
    )
    return sentinel.master_for(
        location.service,
        db=location.db,
        username=location.username,
        password=location.password,
        ssl=location.ssl,
        # A master that went away with its host: give up connecting after 2 s, not the OS's minutes.
        socket_connect_timeout=2.0,
    )


def follow_the_master(connection: Any = None) -> bool:
    """Behind Sentinel, ask where the master is now; True if ``connection`` is not to it.

    Sentinel names the new master within a second of a failover, but leaves a
    master it demoted by hand (``SENTINEL FAILOVER``) serving its clients for
    some ten seconds more: their writes would go nowhere. Asked once a second
    (the worker's state check, each event listener), this closes the pool's
    idle connections to a former master, so the next command goes to the new
    one; a connection in use is closed when it is given back. Without
    Sentinel it is a no-op.
    """
    pool = redis_client().connection_pool
    if not getattr(pool, "is_master", False) or not hasattr(pool, "sentinel_manager"):
        return False
    master = pool.get_master_address()  # the pool drops idle connections to any other address
    return connection is not None and (connection.host, connection.port) != tuple(master)


def _refuse_a_cluster(client: Any) -> None:
    """A Redis Cluster node would answer MOVED for most keys; refuse it at once (kinetik.E018)."""
    try:
        cluster = client.info("cluster").get("cluster_enabled")
    except redis_errors():
        return  # not reachable now; the fast path falls back, and a cluster would fail its first script
    if cluster:
        client.close()
        raise ImproperlyConfigured(
            f'KINETIK["REDIS"] points at a Redis Cluster node. {redis_location.CLUSTER_REFUSED} '
            + redis_location.CLUSTER_HINT
        )


def script(name: str, source: str) -> Any:
    """A Lua script registered once per client: each call is one EVALSHA
    (redis-py re-sends the body if a restarted Redis forgot it)."""
    client = redis_client()
    which = (get_settings().redis, name)
    found = _scripts.get(which)
    if found is None:
        found = _scripts[which] = client.register_script(source)
    return found


def forget_clients() -> None:
    """Drop cached clients (settings changed, or a test restarted Redis)."""
    with _lock:
        _scripts.clear()
        for client in _clients.values():
            try:
                client.close()
            except Exception:
                pass
        _clients.clear()


def key(*parts: str) -> str:
    """A kinetik key name: ``<prefix>:<part>:<part>``."""
    return ":".join((get_settings().redis_prefix, *parts))


def queue_key(tag: str) -> str:
    """The sorted set of queued job ids of ``tag``."""
    return key("queue", tag)
