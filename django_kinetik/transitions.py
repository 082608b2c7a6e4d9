"""What the lifecycle tells its hooks: why jobs changed state, which jobs, and how an attempt ended.

The values of the extension seam (``lifecycle.py`` makes the changes and
calls the hooks; middleware's ``before_transition`` / ``after_transition``
receive a :class:`Transition`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .backends.base import Settlement
    from .models import Job
    from .registry import Task
    from .values.options import TaskOptions


class Cause(StrEnum):
    """Why jobs changed state."""

    CREATED = "created"  # new jobs: queued, delayed, waiting, or cancelled at once (a parent had failed)
    PROMOTED = "promoted"  # delayed -> queued: their time came
    RELEASED = "released"  # waiting -> queued or delayed: the jobs they run after let them go on
    RETRIED = "retried"  # failed, timeout or cancelled -> queued by hand, with fresh attempts
    RUN_NOW = "run_now"  # delayed or waiting -> queued by hand
    PUT_BACK = "put_back"  # active -> queued: the worker stopped, or cannot run the job here
    STARTED = "started"  # claimed: the job's code starts
    SETTLED = "settled"  # an attempt ended: completed, failed, or queued/delayed to retry
    TIMED_OUT = "timed_out"  # an attempt passed its timeout: timeout, or retried
    LOST = "lost"  # its worker stopped renewing the lease: a ghost run, queued again or failed
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class Transition:
    """What a hook is told: which jobs moved, why, and (for an attempt's end) how it ended."""

    cause: Cause
    #: the jobs, as they are after the change (before it, in ``before_transition``)
    jobs: Sequence[Job]
    using: str
    settlement: Settlement | None = None
    task: Task | None = None

    @property
    def status(self) -> str:
        """The status the jobs moved to."""
        if self.settlement is not None:
            return str(self.settlement.status)
        return str(self.jobs[0].status) if self.jobs else ""


class Ended(Protocol):
    """One attempt's end, as the worker and eager mode hand it over (an Attempt, or the like)."""

    @property
    def job(self) -> Job: ...

    @property
    def task(self) -> Task | None: ...

    @property
    def options(self) -> TaskOptions | None: ...

    @property
    def settlement(self) -> Settlement | None: ...
