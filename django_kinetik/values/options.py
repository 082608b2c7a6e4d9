"""Per-task options and their cascade.

Options are resolved in three layers, later layers winning:

1. the defaults given where the task is defined (decorator or chainable form),
2. ``KINETIK["TASKS"][task_name]`` in settings,
3. the options given to ``create`` for one job.

Every layer goes through :func:`parse_options`, so a bad value is reported the
same way wherever it was written.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .durations import parse_duration
from .keys import Unique, parse_unique
from .limits import Limit, LimitBy, Rate, parse_concurrency, parse_limit_by, parse_rate_limit
from .priorities import parse_priority
from .schedules import parse_every, parse_missed, parse_schedule
from .text import TAG_LENGTH, unstorable

BACKOFFS = ("fixed", "linear", "exponential")
#: the most ``retries``, ``ghost_retries`` and ``max_snoozes`` may be (the columns' range)
MAX_COUNT = 2**31 - 1


@dataclass(frozen=True, kw_only=True)
class TaskOptions:
    """How a task's jobs are queued and retried."""

    tag: str = "default"
    priority: int = 0
    #: seconds a run may take; ``None`` means no limit
    timeout: float | None = None
    #: extra attempts after the first: ``retries=3`` allows 4 attempts
    retries: int = 0
    #: seconds before the first retry; later ones follow ``backoff``
    retry_delay: float = 10.0
    backoff: str = "fixed"
    #: no retry waits longer than this (seconds); ``None`` means no cap
    retry_max_delay: float | None = 3600.0
    #: each retry's wait is spread by up to this fraction either way (0.1 = ±10%)
    retry_jitter: float = 0.0
    #: retry only these exception types (classes or dotted paths); empty = any exception
    retry_on: tuple[type[BaseException] | str, ...] = ()
    #: how often a run whose worker vanished (lease expired) is queued again
    #: before the job fails as "lost"
    ghost_retries: int = 3
    #: how often a job may ``raise kinetik.Snooze(...)`` before a snooze fails it instead
    max_snoozes: int = 100
    #: delete a job (with its logs and runs) as soon as it completes (Kue's removeOnComplete)
    remove_on_complete: bool = False
    #: one live job per key: True (the whole data), a tuple of data keys, or a
    #: function ``data -> str | None``; see :mod:`django_kinetik.values.keys`
    unique: Unique = False
    #: run a job on this cron schedule (UTC), e.g. ``"*/5 * * * *"``; see :mod:`.schedules`
    schedule: str | None = None
    #: or run one every this many seconds (``every="10m"``); not both
    every: float | None = None
    #: slots missed while no worker ran: ``"skip"`` them, or ``"catch_up"`` with one job
    missed: str = "skip"
    #: at most this many of the task's jobs run at once across all workers (per key with ``limit_by``)
    concurrency: int | None = None
    #: at most ``count`` of its jobs start in any window of ``period`` (``"10/s"``); per key with ``limit_by``
    rate_limit: Rate | None = None
    #: what the limits apply per: data keys, or a function ``data -> str | None``; see :mod:`.limits`
    limit_by: LimitBy | None = None
    #: a job created with ``after=`` whose parent fails, times out or is cancelled:
    #: ``"cancel"`` it too, or ``"run"`` it anyway once every parent has finished
    on_parent_failure: str = "cancel"

    @property
    def limit(self) -> Limit:
        """The concurrency and rate limits workers enforce for this task (falsy: none)."""
        return Limit(concurrency=self.concurrency, rate=self.rate_limit, by=self.limit_by)

    @property
    def max_attempts(self) -> int:
        return self.retries + 1

    def merged(self, overrides: Mapping[str, Any] | None, *, where: str) -> TaskOptions:
        """These options with ``overrides`` (raw, unparsed values) applied on top."""
        if not overrides:
            return self
        parsed = parse_options(overrides, where=where)
        # A later layer's timing replaces the earlier one: every= set in
        # settings turns off the decorator's schedule=, and the other way round.
        for timing, other in (("schedule", "every"), ("every", "schedule")):
            if parsed.get(timing) is not None:
                parsed.setdefault(other, None)
        return dataclasses.replace(self, **parsed)


#: what a job created with ``after=`` does when a parent does not complete
PARENT_FAILURE_POLICIES = ("cancel", "run")


def parse_policy(value: Any) -> str:
    if value not in PARENT_FAILURE_POLICIES:
        raise ValueError(
            f"on_parent_failure {value!r} is not one of {', '.join(PARENT_FAILURE_POLICIES)} "
            f"(what a job does when a job it runs after fails, times out or is cancelled)"
        )
    return str(value)


def parse_tag(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"tag must be a string, not {type(value).__name__}")
    if (
        not value
        or len(value) > TAG_LENGTH
        or any(c.isspace() or c == "," for c in value)
        or unstorable(value) is not None
    ):
        raise ValueError(
            f"tag {value[:120]!r} is not valid; use 1 to {TAG_LENGTH} characters without spaces, commas or NUL"
        )
    return value


def parse_timeout(value: Any) -> float | None:
    if value is None:
        return None
    seconds = parse_duration(value, what="timeout")
    if seconds == 0:
        raise ValueError("timeout must be longer than zero; use None for no limit")
    return seconds


def parse_backoff(value: Any) -> str:
    if value not in BACKOFFS:
        raise ValueError(f"backoff {value!r} is not one of {', '.join(BACKOFFS)}")
    return str(value)


def parse_jitter(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"retry_jitter must be a fraction from 0 to 1, not {type(value).__name__}")
    if not 0 <= value <= 1:
        raise ValueError(f"retry_jitter must be from 0 to 1 (a fraction of the delay), not {value}")
    return float(value)


def parse_max_delay(value: Any) -> float | None:
    if value is None:
        return None
    return parse_duration(value, what="retry_max_delay")


def parse_retry_on(value: Any) -> tuple[type[BaseException] | str, ...]:
    items = value if isinstance(value, (list, tuple)) else (value,)
    for item in items:
        if isinstance(item, str):
            if "." not in item:
                raise ValueError(f"retry_on entry {item!r} must be a dotted path such as 'requests.Timeout'")
        elif not (isinstance(item, type) and issubclass(item, BaseException)):
            raise TypeError(f"retry_on entries must be exception classes or dotted paths, not {item!r}")
    return tuple(items)


def parse_flag(name: str) -> Callable[[Any], bool]:
    def parse(value: Any) -> bool:
        if not isinstance(value, bool):
            raise TypeError(f"{name} must be True or False, not {type(value).__name__}")
        return value

    return parse


def parse_count(name: str) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an integer, not {type(value).__name__}")
        if value < 0:
            raise ValueError(f"{name} cannot be negative: {value}")
        if value > MAX_COUNT:
            raise ValueError(f"{name} {value} is more than {MAX_COUNT:,}, the most a job counts")
        return value

    return parse


_PARSERS: dict[str, Callable[[Any], Any]] = {
    "tag": parse_tag,
    "priority": parse_priority,
    "timeout": parse_timeout,
    "retries": parse_count("retries"),
    "retry_delay": lambda value: parse_duration(value, what="retry_delay"),
    "backoff": parse_backoff,
    "retry_max_delay": parse_max_delay,
    "retry_jitter": parse_jitter,
    "retry_on": parse_retry_on,
    "ghost_retries": parse_count("ghost_retries"),
    "max_snoozes": parse_count("max_snoozes"),
    "remove_on_complete": parse_flag("remove_on_complete"),
    "unique": parse_unique,
    "schedule": parse_schedule,
    "every": parse_every,
    "missed": parse_missed,
    "concurrency": parse_concurrency,
    "rate_limit": parse_rate_limit,
    "limit_by": parse_limit_by,
    "on_parent_failure": parse_policy,
}
OPTION_NAMES = tuple(_PARSERS)
#: options ``create`` may override for one job; kept as JSON in its ``options``
#: column and resolved when it runs (``retry_on`` holds classes: task-level only)
RUN_OPTION_NAMES = (
    "timeout",
    "retries",
    "retry_delay",
    "backoff",
    "retry_max_delay",
    "retry_jitter",
    "ghost_retries",
    "max_snoozes",
    "remove_on_complete",
    "on_parent_failure",
)


def parse_options(raw: Mapping[str, Any], *, where: str) -> dict[str, Any]:
    """Validate raw option values; errors are prefixed with ``where``."""
    parsed = {}
    for name, value in raw.items():
        parser = _PARSERS.get(name)
        if parser is None:
            raise TypeError(f"{where}: unknown option {name!r}; known options are {', '.join(OPTION_NAMES)}")
        try:
            parsed[name] = parser(value)
        except (TypeError, ValueError) as error:
            raise type(error)(f"{where}: {error}") from None
    if parsed.get("schedule") is not None and parsed.get("every") is not None:
        raise ValueError(f"{where}: give schedule (cron) or every (a period), not both")
    return parsed
