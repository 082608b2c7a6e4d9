"""Cancel reaches running code: a job cancelled (or deleted, or taken back) while it runs here is stopped.

Twice a second, while jobs run, the worker asks the database which of them are
no longer its own (:meth:`~django_kinetik.backends.base.Backend.gone_from`).
For each, at once: ``job.closed`` becomes true, so cooperative code can return
early; later log and progress calls are dropped; a cancelled one gets its
attempt's history row (outcome ``cancelled``). Code that ignores it gets
``KINETIK["CANCEL_GRACE"]`` (default 5 s) to return; then the attempt's
deadline is up and it is stopped like a timed-out one (``shutdown.time_out``):
its thread abandoned and its slot free for the next job, or, with
``--processes``, its process replaced.
"""

from __future__ import annotations

import logging

from django.utils import timezone

from ..backends.base import Backend
from ..models import Status
from .slots import Slots

logger = logging.getLogger("django_kinetik.worker")

_WHY: dict[str | None, str] = {Status.CANCELLED: "was cancelled", None: "was deleted"}

#: seconds between two looks at whether running jobs were cancelled
LOOK_EVERY = 0.5


class CancelWatch:
    """The duty that tells running attempts their job was cancelled, and cuts their time to the grace."""

    def __init__(self, backend: Backend, worker_id: int, slots: Slots, grace: float) -> None:
        self.backend = backend
        self.worker_id = worker_id
        self.slots = slots
        self.grace = grace
        self.next_at = 0.0

    def run(self, now: float) -> bool:
        self.next_at = now + LOOK_EVERY
        # Not those whose code has returned: their ends may be written already.
        running = {
            attempt.job.id: attempt
            for attempt in self.slots.running()
            if attempt.stopping_since is None and attempt.settlement is None and not attempt.context.closed
        }
        if not running:
            return False
        gone = self.backend.gone_from(self.worker_id, list(running))
        for job_id, status in gone.items():
            attempt = running[job_id]
            if status == Status.CANCELLED:
                # First: code that sees job.closed and returns finds its attempt in the history.
                self.backend.record_cancelled_run(attempt.job, self.worker_id, attempt.job.started_at or timezone.now())
            if attempt.settlement is not None:
                continue  # its code returned while we looked (the row may show its own end): nothing to stop
            attempt.context.close()
            attempt.stopping_since = now
            self.slots.cut_short(attempt, now + self.grace)
            why = _WHY.get(status, "is no longer this worker's")
            logger.warning(
                "Job %s (%s) %s while it ran; its code has %gs to return before it is stopped.",
                job_id,
                attempt.job.task,
                why,
                self.grace,
            )
        return False
