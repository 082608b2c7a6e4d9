"""The Redis client for ``KINETIK["REDIS"]``, and the names of kinetik's keys.

``KINETIK["REDIS"]`` is a django-redis cache alias (the project's Redis
settings, reused) or a ``redis://`` URL. Every key and channel starts with
``KINETIK["REDIS_PREFIX"]`` (default ``kinetik``) so several projects can
share one Redis.
"""

from __future__ import annotations

import threading
from typing import Any

from ..conf import get_settings

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
    if "://" in where:
        return redis.Redis.from_url(where)
    from django_redis import get_redis_connection

    return get_redis_connection(where)


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
