"""Concurrency and rate limits across every worker: the task options and a job's limit key.

    @kinetik.task("import feed", concurrency=2, limit_by="customer_id")
    @kinetik.task("send sms", rate_limit="10/s")

``concurrency=N``: at most N jobs of the task run at once, whatever the number
of workers. ``rate_limit="10/s"``: at most 10 start in any one-second window.
``limit_by`` (data keys, or a function ``data -> str | None``) makes both apply
per key: "at most 2 per customer". A job's key is computed when it is created
and kept in ``Job.limit_key`` ("" = the task-wide bucket); ``create(...,
limit_key=...)`` sets it directly.

Limits are enforced when workers claim (``backends/limited.py``), never by
sleeping in a worker slot: a job that may not start yet stays queued, and the
worker takes other work meanwhile.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .durations import format_seconds, parse_duration
from .keys import canonical_json, fit, parse_key_source
from .text import check_key, check_text

#: data keys (a tuple), or a function of the data returning the key (None: the task-wide bucket)
LimitBy = tuple[str, ...] | Callable[[Mapping[str, Any]], str | None]

_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\S.*)$")
_RATE_FORMS = '"10/s", "100/m", "1000/h", "5/10s" (starts per period)'
_LIMIT_BY_FORMS = (
    "use a data key ('customer_id'), a tuple of data keys, or a function taking the data and returning "
    "a key (a string) or None"
)


@dataclass(frozen=True)
class Rate:
    """At most ``count`` starts in any window of ``period`` seconds."""

    count: int
    period: float

    def __str__(self) -> str:
        period = format_seconds(self.period)
        # "10/s" rather than "10/1s"
        if re.fullmatch(r"1[a-z]+", period):
            period = period[1:]
        return f"{self.count}/{period}"


def parse_concurrency(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"concurrency must be a whole number of jobs (or None for no limit), not {value!r}")
    if value < 1:
        raise ValueError(f"concurrency must be at least 1, not {value}; use None for no limit")
    return value


def parse_rate_limit(value: Any) -> Rate | None:
    """``"10/s"``, ``"100/m"``, ``"5/10s"``: starts per period (a unit alone means one of it)."""
    if value is None or isinstance(value, Rate):
        return value
    if not isinstance(value, str):
        raise TypeError(f"rate_limit must be text such as {_RATE_FORMS}, not {type(value).__name__}")
    match = _RATE.match(value)
    if match is None:
        raise ValueError(f"rate_limit {value!r} is not a rate; use {_RATE_FORMS}")
    count, period_text = int(match.group(1)), match.group(2).strip()
    if period_text.isalpha():
        period_text = f"1{period_text}"
    try:
        period = parse_duration(period_text, what="rate_limit's period")
    except (TypeError, ValueError):
        raise ValueError(f"rate_limit {value!r} has no period the queue understands; use {_RATE_FORMS}") from None
    if count < 1:
        raise ValueError(f"rate_limit {value!r} allows no starts at all; pause the tag instead")
    if period < 0.01:
        raise ValueError(f"rate_limit {value!r}: the period must be at least 10ms")
    return Rate(count, period)


def parse_limit_by(value: Any) -> LimitBy | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = (value,)
    return parse_key_source(value, option="limit_by", forms=_LIMIT_BY_FORMS)


def parse_limit_key(value: Any) -> str:
    """An explicit ``create(limit_key=...)``: a storable string that fits its column (never cut)."""
    return check_key(value, what="limit_key")


def limit_key_for(task: str, limit_by: LimitBy | None, data: Mapping[str, Any]) -> str:
    """The key a job of ``task`` with ``data`` is limited by ("" when the limits are task-wide)."""
    if limit_by is None:
        return ""
    if isinstance(limit_by, tuple):
        missing = [key for key in limit_by if key not in data]
        if missing:
            raise ValueError(
                f"create({task!r}): the task's limits apply per {', '.join(limit_by)}, "
                f"but the data has no {', '.join(map(repr, missing))}"
            )
        if len(limit_by) == 1:
            value = data[limit_by[0]]
            # A text value is its own key ("acme", not '"acme"'): that is what the admin shows.
            return fit(value if isinstance(value, str) else canonical_json(value))
        return fit(canonical_json([data[key] for key in limit_by]))
    key = limit_by(data)
    if key is None:
        return ""
    if not isinstance(key, str):
        raise TypeError(
            f"create({task!r}): the task's limit_by function must return a string or None, not {type(key).__name__}"
        )
    return fit(check_text(key, what=f"create({task!r}): the key the task's limit_by function returned"))


@dataclass(frozen=True)
class Limit:
    """What a worker enforces for one task when it claims its jobs (falsy: nothing)."""

    concurrency: int | None = None
    rate: Rate | None = None
    #: what the limits apply per (None: the task as a whole)
    by: LimitBy | None = None

    def __bool__(self) -> bool:
        return self.concurrency is not None or self.rate is not None

    def key_for(self, task: str, data: Mapping[str, Any]) -> str:
        return limit_key_for(task, self.by, data)

    def describe(self) -> str:
        """``"2 at once, 10/s per customer_id"`` ("" for no limits)."""
        parts = []
        if self.concurrency is not None:
            parts.append(f"{self.concurrency} at once")
        if self.rate is not None:
            parts.append(str(self.rate))
        text = ", ".join(parts)
        if text and self.by is not None:
            text += f" per {describe_limit_by(self.by)}"
        return text


def describe_limit_by(limit_by: LimitBy) -> str:
    """The data keys, or the function's name."""
    if isinstance(limit_by, tuple):
        return ", ".join(limit_by)
    return f"{getattr(limit_by, '__qualname__', 'key')}()"


#: a rate limit's period is counted in this many slices (see RateWindow)
SLICES = 50


class RateWindow:
    """The starts of the last rate period, counted per slice of it.

    Kept as ``{slice number: starts}`` (a ``LimitState.starts`` value), with
    slice ``n`` covering ``[n * width, (n + 1) * width)`` in epoch seconds.
    A slice counts in full while any of it is inside the last period, so the
    count can only be too high, never too low: no window of one period ever
    sees more than ``rate.count`` starts, at the price of starting up to one
    slice (2% of the period) later than an exact sliding log would.
    """

    def __init__(self, rate: Rate, starts: Mapping[str, int] | None = None) -> None:
        self.rate = rate
        self.width = rate.period / SLICES
        self.starts = {int(number): int(count) for number, count in (starts or {}).items()}

    def _first_counted(self, now: float) -> int:
        """The oldest slice still (partly) inside the period that ends ``now``."""
        return int((now - self.rate.period) // self.width)

    def used(self, now: float) -> int:
        first = self._first_counted(now)
        return sum(count for number, count in self.starts.items() if number >= first)

    def room(self, now: float) -> int:
        """How many more may start now."""
        return max(0, self.rate.count - self.used(now))

    def add(self, now: float, count: int) -> None:
        """Count ``count`` starts at ``now``, forgetting slices that left the period."""
        first = self._first_counted(now)
        self.starts = {number: n for number, n in self.starts.items() if number >= first}
        current = int(now // self.width)
        self.starts[current] = self.starts.get(current, 0) + count

    def opens_at(self, now: float) -> float:
        """When the next start is allowed (``now`` if there is room already)."""
        if self.room(now):
            return now
        first = self._first_counted(now)
        used = self.used(now)
        for number in sorted(number for number in self.starts if number >= first):
            used -= self.starts[number]
            if used < self.rate.count:
                # The slice stops counting once the period has passed its end.
                return (number + 1) * self.width + self.rate.period
        return now

    def stored(self) -> dict[str, int]:
        return {str(number): count for number, count in sorted(self.starts.items())}
