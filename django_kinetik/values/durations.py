"""Durations as people write them: ``"10ms" "30s" "45m" "2h" "6d"``.

A duration is always returned as float seconds. Integers are milliseconds
(Kinetik's convention), strings may combine units (``"1h30m"``), and a
``timedelta`` is taken as it is. Negative or unreadable values are a
``ValueError`` that shows the accepted forms.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from django.utils import timezone

DurationLike = int | float | str | timedelta
DelayLike = DurationLike | datetime | None

_UNITS = {
    "ms": 0.001,
    "s": 1.0,
    "sec": 1.0,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 604800.0,
}
_PART = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|sec|min|s|m|h|d|w)\s*")
_FORMS = '"10ms", "30s", "45m", "2h", "6d" (or "1h30m"), integer milliseconds or a timedelta'


def parse_duration(value: DurationLike, *, what: str = "duration") -> float:
    """Return ``value`` as seconds, or raise ``ValueError``/``TypeError`` naming ``what``."""
    if isinstance(value, bool):
        raise TypeError(f"{what} must be {_FORMS}, not a bool")
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int):
        seconds = value / 1000
    elif isinstance(value, float):
        # A float has no unit of its own; treat it like the integer form.
        seconds = value / 1000
    elif isinstance(value, str):
        seconds = _parse_text(value, what)
    else:
        raise TypeError(f"{what} must be {_FORMS}, not {type(value).__name__}")
    if seconds < 0 or seconds != seconds:  # NaN compares unequal to itself
        raise ValueError(f"{what} cannot be negative: {value!r}")
    return seconds


def _parse_text(text: str, what: str) -> float:
    stripped = text.strip().lower()
    if stripped.lstrip("-").isdigit():
        if stripped.startswith("-"):
            raise ValueError(f"{what} cannot be negative: {text!r}")
        return int(stripped) / 1000
    position, total = 0, 0.0
    while position < len(stripped):
        match = _PART.match(stripped, position)
        if match is None:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    if not stripped or position != len(stripped):
        if stripped.startswith("-"):
            raise ValueError(f"{what} cannot be negative: {text!r}")
        raise ValueError(f"{what} {text!r} is not a duration; use {_FORMS}")
    return total


def run_at_for(delay: DelayLike, now: datetime | None = None) -> datetime:
    """When a job created now with ``delay`` should run; a past datetime means now."""
    now = now or timezone.now()
    if delay is None:
        return now
    if isinstance(delay, datetime):
        if timezone.is_naive(delay):
            delay = timezone.make_aware(delay)
        return max(delay, now)
    return now + timedelta(seconds=parse_duration(delay, what="delay"))


def format_seconds(seconds: float | None) -> str:
    """A short human form of a duration in seconds (``"1.5s"``, ``"2m"``)."""
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"
