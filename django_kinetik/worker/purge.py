"""Workers delete finished jobs past their keep time, so the table does not grow forever.

Completed jobs go ``KINETIK["PURGE_AFTER"]`` after they finished (1 day by
default; None keeps them); failed, timed-out and cancelled jobs after
``KINETIK["PURGE_FAILED_AFTER"]`` (None, the default: kept until someone
cleans them, since they are what people come to look at). A job whose task
has ``remove_on_complete=True`` goes as soon as it completes (after a few
seconds' grace, so a ``job.wait()`` woken by its end can still read the result).

A pass runs about once a minute in some worker: one worker at a time where the
database has a lock for it (PostgreSQL advisory lock, MySQL ``GET_LOCK``;
SQLite serialises writers anyway). It deletes in small batches, each its own
short transaction with the jobs' logs and runs, and at most ``MAX_BATCHES`` of
them per pass, so the worker's loop never stalls on a big backlog; the next
pass comes sooner while more is due.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta

from django.db import connections
from django.utils import timezone

from ..conf import get_settings
from ..models import FINISHED_STATUSES, Job, Status

logger = logging.getLogger("django_kinetik.worker")

#: seconds between passes (spread by up to a sixth, so workers started together do not line up)
EVERY = 60.0
#: jobs per delete (one short transaction each)
BATCH = 500
#: batches per pass; more due means the next pass comes after ``SOONER`` seconds. A pass
#: runs on the worker's loop: 4 batches took ~55 ms on PostgreSQL (20 took ~270 ms), so
#: clearing a backlog (an upgrade with a million old jobs: ~2,000 a second) barely delays claims
MAX_BATCHES = 4
SOONER = 1.0
#: seconds a completed remove_on_complete job stays, for waiters to read its result
REMOVE_GRACE = 5.0
#: the lock's name (MySQL) and key (PostgreSQL advisory locks take a number)
LOCK_NAME = "kinetik.purge"
LOCK_KEY = 0x6B696E65  # "kine"


class Purger:
    """One worker's share of deleting old finished jobs."""

    def __init__(self, alias: str) -> None:
        self.alias = alias
        # The first pass comes at start; later ones spread out (the lock sorts out a crowd).
        self._next_pass = time.monotonic()
        self._lock = threading.Lock()
        #: (monotonic time completed, job id) of remove_on_complete jobs
        self._completed: list[tuple[float, int]] = []

    def completed(self, job_id: int) -> None:
        """A remove_on_complete job's end was written (called from the settler thread)."""
        with self._lock:
            self._completed.append((time.monotonic(), job_id))

    def maintain(self, now: float) -> int:
        """Deletions that are due; return how many jobs were deleted."""
        deleted = self._remove_completed(now)
        if now >= self._next_pass:
            more = False
            with self._only_worker() as mine:
                if mine:
                    passed, more = self.run_pass()
                    deleted += passed
            self._next_pass = now + (SOONER if more else EVERY * random.uniform(5 / 6, 7 / 6))
        return deleted

    def _remove_completed(self, now: float) -> int:
        from ..jobs import delete_jobs  # jobs.py imports the worker package: not at import time

        with self._lock:
            ready = [job_id for done, job_id in self._completed if now - done >= REMOVE_GRACE]
            self._completed = [(done, job_id) for done, job_id in self._completed if now - done < REMOVE_GRACE]
        deleted = 0
        for start in range(0, len(ready), BATCH):
            deleted += delete_jobs(ready[start : start + BATCH])
        return deleted

    def run_pass(self) -> tuple[int, bool]:
        """Delete what is due, up to MAX_BATCHES batches; return (deleted, whether more is due)."""
        from ..jobs import delete_jobs

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
            due = Job.objects.using(self.alias).filter(status__in=statuses, finished_at__lt=cutoff)
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
        return deleted, more

    @contextlib.contextmanager
    def _only_worker(self) -> Iterator[bool]:
        """Yield True if this worker may purge now (no other one is)."""
        connection = connections[self.alias]
        statements = _LOCKS.get(connection.vendor)
        if statements is None:
            yield True  # SQLite: writers take turns anyway
            return
        take, release, lock = statements
        with connection.cursor() as cursor:
            cursor.execute(take, [lock])
            locked = cursor.fetchone()[0] in (True, 1)
        try:
            yield locked
        finally:
            if locked:
                with connection.cursor() as cursor:
                    cursor.execute(release, [lock])


#: per vendor: take the lock without waiting, release it, and the lock's name or key
_LOCKS: dict[str, tuple[str, str, int | str]] = {
    "postgresql": ("SELECT pg_try_advisory_lock(%s)", "SELECT pg_advisory_unlock(%s)", LOCK_KEY),
    "mysql": ("SELECT GET_LOCK(%s, 0)", "SELECT RELEASE_LOCK(%s)", LOCK_NAME),
}
