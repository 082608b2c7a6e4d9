"""When a failed job runs again."""

from __future__ import annotations

from .options import TaskOptions


def retry_delay(options: TaskOptions, attempt: int) -> float:
    """Seconds to wait before the attempt after ``attempt`` (1-based).

    ``fixed`` waits ``retry_delay`` every time; ``linear`` waits it once more
    per attempt (10s, 20s, 30s...); ``exponential`` doubles it (10s, 20s, 40s...).
    """
    base = options.retry_delay
    if options.backoff == "linear":
        return base * attempt
    if options.backoff == "exponential":
        return base * 2 ** (attempt - 1)
    return base
