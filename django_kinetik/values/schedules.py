"""Periodic tasks' timing: a cron expression or a fixed period, and the slots it gives.

A task with ``schedule="*/5 * * * *"`` (cron, via croniter) or ``every="10m"``
gets one job per *slot*, the moments its timing names. Everything is UTC: cron
fields are read in UTC, and ``every`` slots are whole multiples of the period
since the Unix epoch, so ``every="1h"`` falls on the hour in every worker.
The workers create the jobs (``worker/scheduler.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from .durations import format_seconds, parse_duration

if TYPE_CHECKING:
    from .options import TaskOptions

#: what to do with slots that passed while no worker ran: run nothing for them,
#: or one job for all of them
MISSED = ("skip", "catch_up")
CRON_FORMS = "five fields (minute hour day-of-month month day-of-week) such as '*/5 * * * *' or '0 3 * * mon'"
#: a cron schedule is accepted when this many next fire times exist
FIRES_CHECKED = 3
#: the shortest ``every``: workers look at schedules once a second
MIN_EVERY = 1.0


def parse_schedule(value: Any) -> str | None:
    """A cron expression, checked; None means not scheduled by cron."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"schedule must be cron text, {CRON_FORMS}, not {type(value).__name__}")
    from croniter import CroniterError, croniter

    text = " ".join(value.split())
    if not text.startswith("@") and len(text.split()) != 5:
        raise ValueError(f"schedule {value!r} has {len(text.split())} field(s); use {CRON_FORMS}")
    try:
        fires = croniter(text, datetime.now(UTC))
    except (CroniterError, ValueError, KeyError) as error:
        raise ValueError(f"schedule {value!r} is not a valid cron expression ({error}); use {CRON_FORMS}") from None
    # A well-formed expression can still name no time at all ("0 0 31 2 *",
    # February 31st): workers would find no next slot, so it is refused here.
    try:
        for _ in range(FIRES_CHECKED):
            fires.get_next(datetime)
    except (CroniterError, ValueError, OverflowError) as error:
        raise ValueError(
            f"schedule {value!r} never fires (no {FIRES_CHECKED} next times exist: {error}); "
            f"check its day and month fields"
        ) from None
    return text


def parse_every(value: Any) -> float | None:
    """A period in seconds (``"10m"``); None means not scheduled by period."""
    if value is None:
        return None
    seconds = parse_duration(value, what="every")
    if seconds < MIN_EVERY:
        raise ValueError(f"every must be at least {MIN_EVERY:g}s, not {value!r}")
    return seconds


def parse_missed(value: Any) -> str:
    if value not in MISSED:
        raise ValueError(f"missed {value!r} is not one of {', '.join(MISSED)}")
    return str(value)


@dataclass(frozen=True)
class Timing:
    """When a periodic task's slots fall (exactly one of ``cron`` and ``every`` is set)."""

    cron: str | None = None
    every: float | None = None

    @classmethod
    def of(cls, options: TaskOptions) -> Timing | None:
        """The timing of a task with these options; None if it is not periodic."""
        if options.schedule is not None:
            return cls(cron=options.schedule)
        if options.every is not None:
            return cls(every=options.every)
        return None

    def describe(self) -> str:
        """``"*/5 * * * *"`` or ``"every 10m"``; stored with the schedule's row, so a change is noticed."""
        return self.cron if self.cron is not None else f"every {format_seconds(self.every)}"

    def next_after(self, moment: datetime) -> datetime:
        """The first slot strictly after ``moment``."""
        moment = moment.astimezone(UTC)
        if self.cron is not None:
            from croniter import croniter

            slot: datetime = croniter(self.cron, moment).get_next(datetime)
            return slot.astimezone(UTC)
        period = self.every or MIN_EVERY
        return _from_timestamp((math.floor(moment.timestamp() / period) + 1) * period)

    def latest_until(self, moment: datetime) -> datetime:
        """The last slot at or before ``moment``."""
        moment = moment.astimezone(UTC)
        if self.cron is not None:
            from croniter import croniter

            # Cron slots fall on whole seconds; get_prev excludes its start.
            start = moment.replace(microsecond=0) + timedelta(seconds=1)
            slot: datetime = croniter(self.cron, start).get_prev(datetime)
            return slot.astimezone(UTC)
        period = self.every or MIN_EVERY
        return _from_timestamp(math.floor(moment.timestamp() / period) * period)


def _from_timestamp(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)
