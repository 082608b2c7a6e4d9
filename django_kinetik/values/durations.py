"""Durations as people write them: ``"10ms" "30s" "45m" "2h" "6d"``.

A duration is always returned as float seconds. Integers are milliseconds
(Kinetik's convention), strings may combine units (``"1h30m"``), and a
``timedelta`` is taken as it is. Negative or unreadable values are a
``ValueError`` that shows the accepted forms, and so is anything longer than
:data:`MAX_DURATION` (ten years): a longer delay, timeout or period is
almost always a unit mistake, and past it the arithmetic on dates would
overflow (``"99999999d"`` is past the year 9999).
"""

from __future__ import annotations

import re
import sys
import warnings
from datetime import datetime, timedelta
from types import FrameType

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
#: the longest duration accepted anywhere (delay, timeout, retry delay, every, lease...)
MAX_DURATION = timedelta(days=3650)
_MAX_SECONDS = MAX_DURATION.total_seconds()
_FORMS = '"10ms", "30s", "45m", "2h", "6d" (or "1h30m"), integer milliseconds or a timedelta'


class BareNumberWarning(UserWarning):
    """A bare number under a second (``timeout=5``): milliseconds in Python, and very likely meant as seconds."""


def parse_duration(value: DurationLike, *, what: str = "duration", warn: bool = True) -> float:
    """Return ``value`` as seconds, or raise ``ValueError``/``TypeError`` naming ``what``.

    A bare number (``5``, ``"5"``) is milliseconds; from 1 up to 999 it gets a
    :class:`BareNumberWarning` unless ``warn`` is false (``wait(poll=...)``,
    where a few milliseconds is the point): ``timeout=5`` is almost always
    someone meaning five seconds. Write ``"5ms"`` to say you mean it.
    """
    if isinstance(value, bool):
        raise TypeError(f"{what} must be {_FORMS}, not a bool")
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)):
        # A float has no unit of its own; treat it like the integer form.
        seconds = _milliseconds(value, what)
        if warn:
            _warn_if_bare(value, what)
    elif isinstance(value, str):
        seconds = _parse_text(value, what)
        if warn and value.strip().isascii() and value.strip().isdigit():
            _warn_if_bare(int(value.strip()), what)
    else:
        raise TypeError(f"{what} must be {_FORMS}, not {type(value).__name__}")
    if seconds < 0 or seconds != seconds:  # NaN compares unequal to itself
        raise ValueError(f"{what} cannot be negative: {value!r}")
    if seconds > _MAX_SECONDS:
        raise ValueError(
            f"{what} {value!r} is longer than {MAX_DURATION.days} days, the most accepted; "
            f"check its unit (integers are milliseconds)"
        )
    return seconds


def _parse_text(text: str, what: str) -> float:
    stripped = text.strip().lower()
    if stripped.isascii() and stripped.lstrip("-").isdigit():
        if stripped.startswith("-"):
            raise ValueError(f"{what} cannot be negative: {text!r}")
        return _milliseconds(int(stripped), what)
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


def _warn_if_bare(number: float, what: str) -> None:
    if 0 < number < 1000:
        warnings.warn(
            BareNumberWarning(
                f"{what}={number!r} is {number:g} milliseconds: in Python a bare number is milliseconds. "
                f"Write {what}='{number:g}s' if you meant seconds, or '{number:g}ms' to keep it without this warning."
            ),
            stacklevel=_caller_level(),
        )


def _caller_level() -> int:
    """The stack level of the first frame outside kinetik: the line that wrote the number."""
    frame: FrameType | None = sys._getframe(2)
    level = 2
    while frame is not None and frame.f_globals.get("__name__", "").startswith("django_kinetik."):
        frame, level = frame.f_back, level + 1
    return level


def _milliseconds(value: int | float, what: str) -> float:
    try:
        return value / 1000
    except OverflowError:  # an integer too large for a float
        raise ValueError(f"{what} {value!r} is longer than {MAX_DURATION.days} days, the most accepted") from None


def aware(moment: datetime) -> datetime:
    """``moment`` with a time zone: a naive one is in the current time zone."""
    if timezone.is_aware(moment):
        return moment
    try:
        return timezone.make_aware(moment)
    except (ValueError, OverflowError):
        raise ValueError(f"delay {moment!r} is not a time in the current time zone; give an aware datetime") from None


def run_at_for(delay: DelayLike, now: datetime | None = None) -> datetime:
    """When a job created now with ``delay`` should run; a past datetime means now."""
    now = now or timezone.now()
    if delay is None:
        return now
    if isinstance(delay, datetime):
        delay = aware(delay)
        if delay - now > MAX_DURATION:
            raise ValueError(
                f"delay {delay.isoformat()} is more than {MAX_DURATION.days} days ahead, the most accepted"
            )
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
