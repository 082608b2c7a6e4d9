"""Workers create the jobs of periodic tasks (``schedule=`` cron or ``every=``), each slot's once.

Every worker looks at the schedules of the tasks registered in its process, at
most once a second, from the ``Schedule`` rows it last read (re-read every
interval, and right after it acted on one). When a row's next slot has come,
the worker claims the slot and creates its job in one transaction::

    UPDATE schedule SET last_slot = <slot>, next_slot = <the one after>
     WHERE task = <name> AND (last_slot IS NULL OR last_slot < <slot>)

``last_slot`` only moves forward, so of any number of workers racing for a slot
exactly one updates the row, and only that one creates the job; if creating
it fails, the claim rolls back with it and the slot stays open.

After downtime (no worker ran when slots passed), ``missed="skip"`` runs only
a slot that is still on time (at most ``ON_TIME`` seconds late) and skips the
rest; ``missed="catch_up"`` runs one job for all of them, the latest slot's,
whose data says since when slots were missed.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from ..backends.base import DATABASE_ERRORS
from ..jobs import create
from ..models import Schedule
from ..registry import Task, registry
from ..values.schedules import Timing

logger = logging.getLogger("django_kinetik.worker")

#: seconds between looks at the schedules
CHECK_EVERY = 1.0
#: seconds after its time a slot still runs with ``missed="skip"`` (a restart, a slow loop)
ON_TIME = 60.0


class Scheduler:
    """One worker's share of creating periodic tasks' jobs."""

    def __init__(self, alias: str, interval: float) -> None:
        self.alias = alias
        self.interval = interval
        self.next_at = 0.0
        self._next_read = 0.0
        self._rows: dict[str, Schedule] = {}

    def run(self, now: float) -> bool:
        """Create the jobs of slots that have come; True if any was created."""
        return bool(self.fire_due(now))

    def fire_due(self, now: float) -> int:
        """Create the jobs of slots that have come; return how many were created."""
        if now < self.next_at:
            return 0
        self.next_at = now + CHECK_EVERY
        timings = registry.periodic()
        if not timings:
            self.next_at = now + max(self.interval, CHECK_EVERY)
            return 0
        if now >= self._next_read or not set(timings) <= set(self._rows):
            self._rows = self._read(timings)
            self._next_read = now + max(self.interval, CHECK_EVERY)
        moment = timezone.now()
        created = 0
        for task, timing in timings.values():
            row = self._rows.get(task.name)
            if row is None or (row.schedule == timing.describe() and row.next_slot > moment):
                continue
            self._next_read = 0.0  # the row changes (here or elsewhere): read it again next time
            if row.schedule != timing.describe():
                self._reschedule(row, timing, moment)
            else:
                created += self._fire(task, timing, row, moment)
        return created

    def _read(self, timings: dict[str, tuple[Task, Timing]]) -> dict[str, Schedule]:
        schedules = Schedule.objects.using(self.alias)
        rows = schedules.in_bulk(list(timings))
        missing = [name for name in timings if name not in rows]
        if missing:
            # A new periodic task starts at its next slot, not with a backlog.
            now = timezone.now()
            new = {name: timings[name][1] for name in missing}
            schedules.bulk_create(
                [Schedule(task=name, schedule=t.describe(), next_slot=t.next_after(now)) for name, t in new.items()],
                ignore_conflicts=True,  # another worker may be adding it too
            )
            rows.update(schedules.in_bulk(missing))
        return rows

    def _reschedule(self, row: Schedule, timing: Timing, moment: datetime) -> None:
        """The task's timing changed (a deploy): its next slot follows the new one."""
        Schedule.objects.using(self.alias).filter(task=row.task, schedule=row.schedule).update(
            schedule=timing.describe(), next_slot=timing.next_after(moment)
        )

    def _fire(self, task: Task, timing: Timing, row: Schedule, moment: datetime) -> int:
        slot = timing.latest_until(moment)
        next_slot = timing.next_after(moment)
        schedules = Schedule.objects.using(self.alias).filter(task=row.task)
        on_time = (moment - slot).total_seconds() <= ON_TIME
        catch_up = task.effective_options().missed == "catch_up"
        if row.last_slot is not None and slot <= row.last_slot:
            schedules.filter(next_slot=row.next_slot).update(next_slot=next_slot)  # an odd row: set it right
            return 0
        if not on_time and not catch_up:
            if schedules.filter(next_slot=row.next_slot).update(next_slot=next_slot):
                logger.info("Periodic task %s: skipped the slots missed since %s.", task.name, row.next_slot)
            return 0
        data = {"scheduled_for": slot.isoformat()}
        if catch_up and row.next_slot < slot:
            data["missed_since"] = row.next_slot.isoformat()
        try:
            with transaction.atomic(using=self.alias):
                claimed = schedules.filter(Q(last_slot__isnull=True) | Q(last_slot__lt=slot)).update(
                    last_slot=slot, next_slot=next_slot
                )
                if not claimed:
                    return 0  # another worker has this slot
                job = create(task, data)
        except DATABASE_ERRORS:
            raise
        except Exception:
            # The job could not be created (bad settings for the task, say): the
            # slot stays open for the next look, and the worker goes on.
            logger.exception("Periodic task %s: could not create the job for %s.", task.name, slot)
            return 0
        logger.info("Periodic task %s: created job %s for %s.", task.name, job.pk, slot.isoformat())
        return 1
