"""Priority levels: Kue's names mapped onto integers, larger runs first.

Django's Tasks framework also orders by "larger number first", so a kinetik
priority and a ``django.tasks`` priority mean the same thing.
"""

from __future__ import annotations

PriorityLike = int | str

LEVELS: dict[str, int] = {
    "low": -10,
    "normal": 0,
    "medium": 5,
    "high": 10,
    "critical": 20,
}
MIN_PRIORITY, MAX_PRIORITY = -100, 100


def parse_priority(value: PriorityLike) -> int:
    """Return the integer for a level name or an integer in [-100, 100]."""
    if isinstance(value, str):
        try:
            return LEVELS[value.strip().lower()]
        except KeyError:
            raise ValueError(
                f"priority {value!r} is not a level; use one of {', '.join(LEVELS)} "
                f"or an integer from {MIN_PRIORITY} to {MAX_PRIORITY}"
            ) from None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"priority must be a level name or an integer, not {type(value).__name__}")
    if not MIN_PRIORITY <= value <= MAX_PRIORITY:
        raise ValueError(f"priority {value} is out of range; use {MIN_PRIORITY} to {MAX_PRIORITY}")
    return value
