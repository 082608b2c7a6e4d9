"""When (and whether) a failed attempt is tried again."""

from __future__ import annotations

import logging
import random
from functools import cache

from django.utils.module_loading import import_string

from .durations import MAX_DURATION
from .options import TaskOptions

logger = logging.getLogger("django_kinetik.worker")


def retry_delay(options: TaskOptions, attempt: int) -> float:
    """Seconds to wait before the attempt after ``attempt`` (1-based).

    ``fixed`` waits ``retry_delay`` every time; ``linear`` waits it once more
    per attempt (10s, 20s, 30s...); ``exponential`` doubles it (10s, 20s,
    40s...). The wait is capped at ``retry_max_delay``, then spread by
    ``retry_jitter`` so jobs that failed together do not all come back together.
    """
    base = options.retry_delay
    if options.backoff == "linear":
        delay = base * attempt
    elif options.backoff == "exponential":
        delay = base * 2 ** min(attempt - 1, 64)
    else:
        delay = base
    if options.retry_max_delay is not None:
        delay = min(delay, options.retry_max_delay)
    # Without a cap, exponential backoff passes any date a database holds
    # within a few dozen attempts; no wait is longer than the longest delay.
    delay = min(delay, MAX_DURATION.total_seconds())
    if options.retry_jitter:
        delay *= random.uniform(1 - options.retry_jitter, 1 + options.retry_jitter)
    return max(0.0, delay)


@cache
def _exception_class(path: str) -> type[BaseException] | None:
    try:
        return import_string(path)
    except ImportError:
        logger.error("retry_on names %r, which cannot be imported; it matches nothing.", path)
        return None


def retries_on(options: TaskOptions, error: BaseException) -> bool:
    """Whether ``error`` is one the task retries on (any error, without ``retry_on``)."""
    if not options.retry_on:
        return True
    classes = [_exception_class(item) if isinstance(item, str) else item for item in options.retry_on]
    return isinstance(error, tuple(cls for cls in classes if cls is not None))
