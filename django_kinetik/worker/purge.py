"""Workers delete finished jobs past their keep time, so the table does not grow forever.

Completed jobs go ``KINETIK["PURGE_AFTER"]`` after they finished (1 day by
default; None keeps them); failed, timed-out and cancelled jobs after
``KINETIK["PURGE_FAILED_AFTER"]`` (None, the default: kept until someone
cleans them, since they are what people come to look at). A job whose task
has ``remove_on_complete=True`` goes as soon as it completes (after a few
seconds' grace, so a ``job.wait()`` woken by its end can still read the result).

A pass runs about once a minute in some worker: one worker at a time where the
database has a lock for it (``backend.exclusively``: MySQL ``GET_LOCK``; on
PostgreSQL a transaction-level advisory lock, so the pass is that one
transaction, which a transaction pooler keeps on one server connection;
SQLite serialises writers anyway). It deletes in small batches, with the jobs'
logs and runs, and at most ``MAX_BATCHES`` of them per pass, so the worker's
loop never stalls on a big backlog; while more is due the next pass comes
after three times the last one's time, so a backlog takes at most a quarter of
the loop and the purge keeps up with a busy drain.
On PostgreSQL a pass also folds the finished-job counts of closed connections
into one row each (``models/counts.py``), so that table stays a few rows per
task and tag.
"""

from __future__ import annotations

import logging
import random
import time
from datetime import datetime, timedelta

from django.utils import timezone

from .. import lifecycle
from ..backends.base import Backend
from ..conf import get_settings
from ..jobs import delete_jobs
from ..models import FINISHED_STATUSES, Job, Status

logger = logging.getLogger("django_kinetik.worker")

#: seconds between passes (spread by up to a sixth, so workers started together do not line up)
EVERY = 60.0
#: jobs per delete (one short transaction each)
BATCH = 500
#: batches per pass. A pass runs on the worker's loop: 4 batches took ~55 ms on PostgreSQL
#: (20 took ~270 ms), so one pass barely delays claims
MAX_BATCHES = 4
#: while more is due, the next pass comes after this many times the last pass's own time (the
#: purge takes at most a quarter of the loop): ~9,000 deletions a second at 55 ms a pass, so it
#: keeps up with a drain at the default rate; a fixed second between passes (2,000 a second) did not
BACKLOG_PACE = 3.0
#: ... but never sooner than this
SOONEST = 0.05
#: the name of the lock that lets one worker at a time purge
LOCK_NAME = "kinetik.purge"


class Purger:
    """One worker's share of deleting old finished jobs (a duty of its loop)."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.alias = backend.alias
        # The first pass comes at start; later ones spread out (the lock sorts out a crowd).
        self._next_pass = 0.0

    @property
    def next_at(self) -> float:
        return min(self._next_pass, lifecycle.removals.next_due())

    def run(self, now: float) -> bool:
        """Deletions that are due (remove_on_complete jobs too); never makes work claimable."""
        self.delete_removals(now)
        if now >= self._next_pass:
            more = False
            started = time.monotonic()
            with self.backend.exclusively(LOCK_NAME) as mine:
                if mine:
                    _, more = self.run_pass()
            took = time.monotonic() - started
            pause = max(SOONEST, took * BACKLOG_PACE) if more else EVERY * random.uniform(5 / 6, 7 / 6)
            self._next_pass = now + pause
        return False

    def delete_removals(self, now: float) -> int:
        """Delete the completed remove_on_complete jobs whose grace has passed."""
        ready = lifecycle.removals.ready(now)
        deleted = 0
        for start in range(0, len(ready), BATCH):
            deleted += delete_jobs(ready[start : start + BATCH])
        return deleted

    def run_pass(self) -> tuple[int, bool]:
        """Delete what is due, up to MAX_BATCHES batches; return (deleted, whether more is due)."""
        settings = get_settings()
        now = timezone.now()
        rules: list[tuple[list[str], datetime]] = []
        if settings.purge_after is not None:
            rules.append(([Status.COMPLETED], now - timedelta(seconds=settings.purge_after)))
        if settings.purge_failed_after is not None:
            failed: list[str] = [status for status in FINISHED_STATUSES if status != Status.COMPLETED]
            rules.append((failed, now - timedelta(seconds=settings.purge_failed_after)))
        deleted = 0
        batches = 0
        more = False
        for statuses, cutoff in rules:
            due = Job.objects.using(self.alias).finished(statuses).filter(finished_at__lt=cutoff)
            while True:
                if batches >= MAX_BATCHES:
                    more = True  # probably: the next pass (soon) finds out
                    break
                # No ORDER BY: which old jobs go first does not matter, and an
                # unordered LIMIT stops reading the finished-jobs index early.
                ids = list(due.order_by().values_list("pk", flat=True)[:BATCH])
                if ids:
                    deleted += delete_jobs(ids)
                    batches += 1
                if len(ids) < BATCH:
                    break
        if deleted:
            logger.info("Purged %d finished job(s) past their keep time.", deleted)
        # The purge's lock makes this the one folder of the kept counts (models/counts.py).
        self.backend.fold_counts()
        return deleted, more
