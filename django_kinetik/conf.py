"""The ``KINETIK`` settings dict, read lazily into one typed, frozen object.

Nothing is read at import time: :func:`get_settings` parses ``settings.KINETIK``
on first use and caches the result until Django's ``setting_changed`` signal
says it changed (``override_settings`` in tests). Problems are collected, not
raised one by one, so ``manage.py check`` can report all of them with stable
ids; code that reads an invalid configuration gets ``ImproperlyConfigured``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from .values import redis_location
from .values.durations import parse_duration
from .values.jsondata import DEFAULT_MAX_BYTES
from .values.options import parse_options


@dataclass(frozen=True)
class KinetikSettings:
    """Validated ``KINETIK`` settings; durations are in seconds."""

    #: database alias that holds the job tables
    database: str = "default"
    #: a direct way to that database for kinetik's LISTEN and feed connections, when its alias goes
    #: through a transaction pooler: an alias, or connection keys over the jobs database's ("": none)
    listen_database: str | Mapping[str, Any] = ""
    #: how long an idle worker waits before looking for work again
    interval: float = 1.0
    #: how long a claimed job stays leased without a heartbeat
    lease: float = 60.0
    #: how long a stopping worker lets running jobs finish
    shutdown_timeout: float = 30.0
    #: how long the code of a job cancelled while it runs may take to return before it is stopped
    cancel_grace: float = 5.0
    #: per-task option overrides, by task name (raw values, validated)
    tasks: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: MappingProxyType({}))
    #: dotted paths of middleware classes, outermost first
    middleware: tuple[str, ...] = ()
    #: the Redis fast path: a django-redis cache alias or a redis:// URL ("" = off)
    redis: str = ""
    #: prefix of every Redis key and channel, so several projects can share one Redis
    redis_prefix: str = "kinetik"
    #: run each job in the creating process, before ``create`` returns (tests, scripts)
    eager: bool = False
    #: completed jobs are deleted by the workers this long after they finished (None: kept)
    purge_after: float | None = 86400.0
    #: failed, timed-out and cancelled jobs likewise (None, the default: kept until cleaned)
    purge_failed_after: float | None = None
    #: bearer tokens accepted by the JSON API and metrics (besides a staff session)
    api_tokens: tuple[str, ...] = ()
    #: the largest job data (and result, log or progress data) accepted, in bytes of JSON
    max_data_bytes: int = DEFAULT_MAX_BYTES


@dataclass(frozen=True)
class Problem:
    """One configuration problem, reported by ``manage.py check`` under ``id``."""

    id: str
    msg: str
    hint: str = ""


_DURATIONS = {
    "INTERVAL": "interval",
    "LEASE": "lease",
    "SHUTDOWN_TIMEOUT": "shutdown_timeout",
    "CANCEL_GRACE": "cancel_grace",
}
_MINIMUM = {"INTERVAL": 0.001, "LEASE": 1.0, "SHUTDOWN_TIMEOUT": 0.0, "CANCEL_GRACE": 0.0}
_OPTIONAL_DURATIONS = {"PURGE_AFTER": "purge_after", "PURGE_FAILED_AFTER": "purge_failed_after"}
KNOWN_KEYS = (
    "DATABASE",
    "LISTEN_DATABASE",
    "TASKS",
    "MIDDLEWARE",
    "REDIS",
    "REDIS_PREFIX",
    "EAGER",
    "API_TOKENS",
    "MAX_DATA_BYTES",
    *_DURATIONS,
    *_OPTIONAL_DURATIONS,
)
#: an API token shorter than this is refused (it would be guessable)
MIN_TOKEN_LENGTH = 20
#: what KINETIK["LISTEN_DATABASE"] may set (backends/pooling.py uses them)
_LISTEN_KEYS = ("HOST", "PORT", "USER", "PASSWORD", "OPTIONS")


def read_settings(raw: Any) -> tuple[KinetikSettings, list[Problem]]:
    """Parse a raw ``KINETIK`` value; return the settings and every problem found."""
    problems: list[Problem] = []
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        problems.append(Problem("kinetik.E001", f"KINETIK must be a dict, not {type(raw).__name__}."))
        return KinetikSettings(), problems
    values: dict[str, Any] = {}
    for key in raw:
        if key not in KNOWN_KEYS:
            problems.append(
                Problem(
                    "kinetik.E002",
                    f"KINETIK has an unknown key {key!r}.",
                    f"Known keys are {', '.join(sorted(KNOWN_KEYS))}.",
                )
            )
    for key, attribute in _DURATIONS.items():
        if key not in raw:
            continue
        try:
            seconds = parse_duration(raw[key], what=f'KINETIK["{key}"]')
        except (TypeError, ValueError) as error:
            problems.append(Problem("kinetik.E003", f"{error}."))
            continue
        if seconds < _MINIMUM[key]:
            problems.append(
                Problem(
                    "kinetik.E003", f'KINETIK["{key}"] is too short: {raw[key]!r}.', f"Use at least {_MINIMUM[key]:g}s."
                )
            )
            continue
        values[attribute] = seconds
    if "DATABASE" in raw:
        database = raw["DATABASE"]
        if not isinstance(database, str):
            problems.append(_wrong_type("DATABASE", "a database alias (str)", database))
        elif database not in settings.DATABASES:
            problems.append(
                Problem(
                    "kinetik.E005",
                    f'KINETIK["DATABASE"] is {database!r}, which is not in DATABASES.',
                    f"Use one of {', '.join(settings.DATABASES)}.",
                )
            )
        else:
            values["database"] = database
    problems += _read_listen_database(raw, values)
    if "MIDDLEWARE" in raw:
        middleware = raw["MIDDLEWARE"]
        if not isinstance(middleware, (list, tuple)) or not all(isinstance(m, str) for m in middleware):
            problems.append(_wrong_type("MIDDLEWARE", "a list of dotted paths", middleware))
        else:
            values["middleware"] = tuple(middleware)
    problems += _read_redis(raw, values)
    for key, attribute in _OPTIONAL_DURATIONS.items():
        if key in raw:
            if raw[key] is None:
                values[attribute] = None
                continue
            try:
                values[attribute] = parse_duration(raw[key], what=f'KINETIK["{key}"]')
            except (TypeError, ValueError) as error:
                problems.append(Problem("kinetik.E003", f"{error}.", "Give a duration such as '1d', or None to keep."))
    if "API_TOKENS" in raw:
        tokens = raw["API_TOKENS"]
        if not isinstance(tokens, (list, tuple)) or not all(isinstance(token, str) for token in tokens):
            problems.append(_wrong_type("API_TOKENS", "a list of strings", tokens))
        elif any(len(token) < MIN_TOKEN_LENGTH for token in tokens):
            problems.append(
                Problem(
                    "kinetik.E010",
                    f'KINETIK["API_TOKENS"] has a token shorter than {MIN_TOKEN_LENGTH} characters.',
                    "Generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'",
                )
            )
        else:
            values["api_tokens"] = tuple(tokens)
    if "MAX_DATA_BYTES" in raw:
        size = raw["MAX_DATA_BYTES"]
        if isinstance(size, bool) or not isinstance(size, int) or size < 1024:
            problems.append(
                Problem(
                    "kinetik.E011",
                    f'KINETIK["MAX_DATA_BYTES"] must be a number of bytes of at least 1024, not {size!r}.',
                    f"The default is {DEFAULT_MAX_BYTES} (1 MiB).",
                )
            )
        else:
            values["max_data_bytes"] = size
    if "EAGER" in raw:
        if not isinstance(raw["EAGER"], bool):
            problems.append(_wrong_type("EAGER", "True or False", raw["EAGER"]))
        else:
            values["eager"] = raw["EAGER"]
    if "TASKS" in raw:
        tasks = raw["TASKS"]
        if not isinstance(tasks, Mapping):
            problems.append(_wrong_type("TASKS", "a dict of task name to options", tasks))
        else:
            checked = {}
            for name, options in tasks.items():
                where = f'KINETIK["TASKS"][{name!r}]'
                if not isinstance(options, Mapping):
                    problems.append(Problem("kinetik.E004", f"{where} must be a dict of options."))
                    continue
                try:
                    parse_options(options, where=where)
                except (TypeError, ValueError) as error:
                    problems.append(Problem("kinetik.E006", f"{error}."))
                    continue
                checked[name] = MappingProxyType(dict(options))
            values["tasks"] = MappingProxyType(checked)
    return KinetikSettings(**values), problems


def _read_listen_database(raw: Mapping[str, Any], values: dict[str, Any]) -> list[Problem]:
    if "LISTEN_DATABASE" not in raw or not raw["LISTEN_DATABASE"]:
        return []
    where = raw["LISTEN_DATABASE"]
    keys = ", ".join(_LISTEN_KEYS)
    if isinstance(where, str):
        if where not in settings.DATABASES:
            return [
                Problem(
                    "kinetik.E016",
                    f'KINETIK["LISTEN_DATABASE"] is {where!r}, which is not in DATABASES.',
                    f"Name an alias that reaches the jobs database without a transaction pooler, or a dict of {keys}.",
                )
            ]
        values["listen_database"] = where
        return []
    if not isinstance(where, Mapping) or any(key not in _LISTEN_KEYS for key in where):
        return [
            Problem(
                "kinetik.E016",
                f'KINETIK["LISTEN_DATABASE"] must be a database alias or a dict of {keys}, not {where!r}.',
                'For example {"HOST": "db.internal", "PORT": 5432}: how to reach the jobs database directly.',
            )
        ]
    values["listen_database"] = MappingProxyType(dict(where))
    return []


def _read_redis(raw: Mapping[str, Any], values: dict[str, Any]) -> list[Problem]:
    problems: list[Problem] = []
    redis = raw.get("REDIS")
    if redis not in (None, ""):
        caches = getattr(settings, "CACHES", {})
        if not isinstance(redis, str):
            problems.append(_wrong_type("REDIS", "a cache alias or a redis:// URL (str)", redis))
        elif redis_location.is_cluster_url(redis):
            problems.append(Problem("kinetik.E018", redis_location.CLUSTER_REFUSED, redis_location.CLUSTER_HINT))
        elif redis_location.is_sentinel_url(redis):
            try:
                redis_location.parse_sentinel_url(redis)
            except ValueError as error:
                problems.append(
                    Problem(
                        "kinetik.E009",
                        f'KINETIK["REDIS"]: {error}.',
                        "Write it as redis+sentinel://host:26379[,host:26379...]/<service>[/<db>].",
                    )
                )
            else:
                values["redis"] = redis
        elif redis.startswith(redis_location.SINGLE_SCHEMES):
            values["redis"] = redis
        elif redis not in caches:
            problems.append(
                Problem(
                    "kinetik.E009",
                    f'KINETIK["REDIS"] is {redis!r}, which is neither a redis:// URL nor a cache alias.',
                    f"Use a URL such as redis://127.0.0.1:6379/0, or one of the CACHES aliases: {', '.join(caches)}.",
                )
            )
        elif not str(caches[redis].get("BACKEND", "")).startswith("django_redis."):
            problems.append(
                Problem(
                    "kinetik.E009",
                    f'KINETIK["REDIS"] names the cache {redis!r}, whose backend is not django-redis.',
                    "Point it at a django_redis.cache.RedisCache cache, or give a redis:// URL.",
                )
            )
        elif redis_location.names_cluster_client(caches[redis]):
            problems.append(
                Problem(
                    "kinetik.E018",
                    f'KINETIK["REDIS"] names the cache {redis!r}, a Redis Cluster client. '
                    + redis_location.CLUSTER_REFUSED,
                    redis_location.CLUSTER_HINT,
                )
            )
        else:
            values["redis"] = redis
    if "REDIS_PREFIX" in raw:
        prefix = raw["REDIS_PREFIX"]
        if not isinstance(prefix, str) or not prefix or any(c.isspace() for c in prefix):
            problems.append(_wrong_type("REDIS_PREFIX", "a non-empty string without spaces", prefix))
        else:
            values["redis_prefix"] = prefix
    return problems


def _wrong_type(key: str, expected: str, value: Any) -> Problem:
    return Problem("kinetik.E004", f'KINETIK["{key}"] must be {expected}, not {type(value).__name__}.')


_cached: KinetikSettings | None = None


def get_settings() -> KinetikSettings:
    """The current settings; raises ``ImproperlyConfigured`` if ``KINETIK`` is invalid."""
    global _cached
    if _cached is None:
        parsed, problems = read_settings(getattr(settings, "KINETIK", None))
        if problems:
            first = problems[0]
            more = f" (and {len(problems) - 1} more; run manage.py check)" if len(problems) > 1 else ""
            raise ImproperlyConfigured(f"{first.id}: {first.msg} {first.hint}".strip() + more)
        _cached = parsed
    return _cached


def reset_settings(*, setting: str = "KINETIK", **kwargs: Any) -> None:
    """``setting_changed`` receiver: forget the cached settings."""
    global _cached
    if setting in ("KINETIK", "DATABASES"):
        _cached = None


# -- Django's Tasks framework --------------------------------------------------
#
# Which settings.TASKS backends are kinetik's, read without importing the Tasks
# framework: a worker asks on every project, including Django 5.2 projects
# without the django-tasks backport; the framework is imported only when a
# kinetik backend is actually configured.

#: the path of kinetik's django.tasks backend
TASKS_BACKEND_PATH = "django_kinetik.tasks_backend.KinetikTaskBackend"
#: Django's default queue name (django.tasks.DEFAULT_TASK_QUEUE_NAME)
DEFAULT_QUEUE = "default"


def _is_kinetik_backend(path: Any) -> bool:
    if path == TASKS_BACKEND_PATH:
        return True
    if not isinstance(path, str):
        return False
    # Another path may name a subclass of ours (it says so with kinetik_backend = True).
    try:
        backend = import_string(path)
    except Exception:  # an unimportable BACKEND is Django's to report, not ours
        return False
    return isinstance(backend, type) and getattr(backend, "kinetik_backend", False) is True


def django_tasks_backends() -> dict[str, dict[str, Any]]:
    """``settings.TASKS`` entries whose BACKEND is kinetik's, by alias."""
    tasks = getattr(settings, "TASKS", None) or {}
    if not isinstance(tasks, dict):
        return {}
    return {
        alias: params
        for alias, params in tasks.items()
        if isinstance(params, dict) and _is_kinetik_backend(params.get("BACKEND"))
    }


def django_tasks_enabled() -> bool:
    """Whether this project runs ``django.tasks`` jobs on kinetik workers."""
    return bool(django_tasks_backends())


def django_tasks_queues() -> list[str]:
    """The queues of every kinetik backend, in settings order: what a worker with no tags serves too."""
    queues: dict[str, None] = {}
    for params in django_tasks_backends().values():
        for queue in params.get("QUEUES", [DEFAULT_QUEUE]):
            queues[queue] = None
    return list(queues)
