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
from .priorities import parse_priority

BACKOFFS = ("fixed", "linear", "exponential")


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

    @property
    def max_attempts(self) -> int:
        return self.retries + 1

    def merged(self, overrides: Mapping[str, Any] | None, *, where: str) -> TaskOptions:
        """These options with ``overrides`` (raw, unparsed values) applied on top."""
        if not overrides:
            return self
        return dataclasses.replace(self, **parse_options(overrides, where=where))


def parse_tag(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"tag must be a string, not {type(value).__name__}")
    if not value or len(value) > 100 or any(c.isspace() or c == "," for c in value):
        raise ValueError(f"tag {value!r} is not valid; use 1 to 100 characters without spaces or commas")
    return value


def parse_timeout(value: Any) -> float | None:
    if value is None:
        return None
    seconds = parse_duration(value, what="timeout")
    if seconds == 0:
        raise ValueError("timeout must be longer than zero; use None for no limit")
    return seconds


def parse_retries(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"retries must be an integer, not {type(value).__name__}")
    if value < 0:
        raise ValueError(f"retries cannot be negative: {value}")
    return value


def parse_backoff(value: Any) -> str:
    if value not in BACKOFFS:
        raise ValueError(f"backoff {value!r} is not one of {', '.join(BACKOFFS)}")
    return str(value)


_PARSERS: dict[str, Callable[[Any], Any]] = {
    "tag": parse_tag,
    "priority": parse_priority,
    "timeout": parse_timeout,
    "retries": parse_retries,
    "retry_delay": lambda value: parse_duration(value, what="retry_delay"),
    "backoff": parse_backoff,
}
OPTION_NAMES = tuple(_PARSERS)
#: options a job keeps in its ``options`` column and resolves when it runs
RUN_OPTION_NAMES = ("timeout", "retries", "retry_delay", "backoff")


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
    return parsed
