"""The portable backend: every operation through Django's ORM, on any database Django supports.

MySQL/MariaDB use it as it is (with their named locks, ``mysql.py``);
PostgreSQL and SQLite override the hot path and the guarded transitions with
statements of their own. Each status change is one conditional ``UPDATE``
guarded by the statuses it may start from, so two processes racing on one
job cannot both win, and only the rows that changed are returned.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from functools import partial
from typing import Any, TypeVar

from django.db import IntegrityError, transaction
from django.db.models import F, Min, Q
from django.utils import timezone

from ..models import (
    LIVE_STATUSES,
    RETRYABLE_STATUSES,
    RUNNABLE_NOW,
    WAITING_FOR_CODE,
    Hold,
    Job,
    JobDependency,
    JobLog,
    JobRun,
    Outcome,
    Status,
    cancelled,
    requeued,
)
from ..values.limits import Limit
from .base import Backend, Entry, Runnable, Settlement, Written
from .limited import LimitedClaims
from .rows import REQUEUED, apply, claim_order, settled_changes
from .workers import WorkerRows

T = TypeVar("T")

#: promotions per batch (each its own short statement)
PROMOTE_BATCH = 1000


class OrmBackend(WorkerRows, Backend):
    """Jobs created, claimed and settled through the ORM in the Django database ``alias``."""

    def jobs(self) -> Any:
        """The job table of this database (a :class:`~django_kinetik.models.JobQuerySet`)."""
        return Job.objects.using(self.alias)

    def retrying_locks(self, operation: Callable[[], T]) -> T:
        """Run ``operation``; SQLite's backend waits out "database is locked" here."""
        return operation()

    def atomic(self) -> Any:
        return transaction.atomic(using=self.alias)

    # -- creating ------------------------------------------------------------

    def insert_jobs(
        self, fields: dict[str, Any], payloads: list[dict[str, Any]], *, limit_keys: list[str] | None, batch_size: int
    ) -> list[Job]:
        rows = [
            Job(data=payload, limit_key=limit_keys[index] if limit_keys else None, **fields)
            for index, payload in enumerate(payloads)
        ]
        if len(rows) == 1:
            rows[0].save(using=self.alias, force_insert=True)
            return rows
        with self.atomic():  # all or nothing across batches
            return self.jobs().bulk_create(rows, batch_size=batch_size)  # type: ignore[no-any-return]

    def insert_unique(self, job: Job) -> Job | None:
        for _ in range(5):
            try:
                with self.atomic():
                    job.save(using=self.alias, force_insert=True)
                return None
            except IntegrityError:
                job.pk = None
                existing = self.live_holder(job.unique_key)  # type: ignore[arg-type]
                if existing is not None:
                    return existing
                # The holder finished between our insert and our look: try again.
        raise IntegrityError(f"Could not create a job with unique_key={job.unique_key!r}")

    def live_holder(self, unique_key: str) -> Job | None:
        """The live job holding ``unique_key``, if any."""
        return self.jobs().live().filter(unique_key=unique_key).first()  # type: ignore[no-any-return]

    # -- the hot path ------------------------------------------------------

    def claim(self, worker_id: int, tags: Sequence[str], runnable: Runnable, limit: int, lease: float) -> list[Job]:
        if limit <= 0 or not runnable:
            return []
        now = timezone.now()
        expires = now + timedelta(seconds=lease)
        claimed: list[Job] = []
        for tag in tags:
            claimed += self._claim_tag(worker_id, tag, runnable, limit - len(claimed), now, expires)
            if len(claimed) >= limit:
                break
        return claimed

    def _claim_tag(
        self, worker_id: int, tag: str, runnable: Runnable, limit: int, now: datetime, expires: datetime
    ) -> list[Job]:
        """One tag's claim: the rows locked (skipping locked ones), then taken, in one transaction."""
        jobs = self._claim_with_orm(worker_id, self._runnable(runnable).filter(tag=tag), limit, now, expires)
        jobs.sort(key=claim_order)
        return jobs

    def _runnable(self, runnable: Runnable) -> Any:
        condition = Q(task__in=runnable.tasks)
        if runnable.django_tasks:
            condition |= ~Q(task_backend="") & ~Q(task__in=runnable.excluded)
        return self.jobs().queued().filter(condition)

    def _claim_with_orm(
        self, worker_id: int | None, candidates: Any, limit: int, now: datetime, expires: datetime
    ) -> list[Job]:
        with self.atomic():
            ids = list(
                candidates.select_for_update(skip_locked=True)
                .order_by("-priority", "run_at", "id")
                .values_list("id", flat=True)[:limit]
            )
            if not ids:
                return []
            self.jobs().filter(id__in=ids).update(
                status=Status.ACTIVE,
                attempts=F("attempts") + 1,
                started_at=now,
                finished_at=None,
                worker_id=worker_id,
                lease_expires_at=expires,
                progress_current=None,
                progress_total=None,
                progress_data=None,
            )
        return list(self.jobs().filter(id__in=ids))

    def claim_ids(self, worker_id: int | None, ids: Sequence[int], runnable: Runnable, lease: float) -> list[Job]:
        if not ids or not runnable:
            return []
        now = timezone.now()
        candidates = self._runnable(runnable).filter(pk__in=list(ids))
        jobs = self._claim_with_orm(worker_id, candidates, len(ids), now, now + timedelta(seconds=lease))
        return _in_order_of(jobs, ids)

    def settle_many(self, items: Sequence[tuple[Job, Settlement]], *, announce: bool = False) -> Written:
        if not items:
            return Written([])

        def write() -> list[bool]:
            with self.atomic():
                return [self._settle_one(job, settlement) for job, settlement in items]

        return Written(self.retrying_locks(write))

    def _settle_one(self, job: Job, settlement: Settlement) -> bool:
        """The guarded UPDATE and the JobRun insert, inside the caller's transaction."""
        changes = settled_changes(settlement)
        guard: dict[str, Any] = {
            "pk": job.pk,
            "status": Status.ACTIVE,
            "worker_id": job.worker_id,
            "attempts": job.attempts,
        }
        if settlement.lost:
            # Only while the lease is still expired: a late heartbeat wins.
            guard["lease_expires_at__lt"] = settlement.finished_at
            if settlement.status in REQUEUED:
                # A ghost run is not an attempt; it is counted separately. It
                # goes first in line, as it would have been done by now.
                changes.update(attempts=F("attempts") - 1, ghosts=F("ghosts") + 1)
                changes["run_at"] = self._first_in_line(job, changes.get("run_at") or settlement.finished_at)
        elif not settlement.counted and settlement.status in REQUEUED:
            changes["attempts"] = F("attempts") - 1  # an outage's or a snooze, not the job's
            if settlement.snoozed:
                changes["snoozes"] = F("snoozes") + 1
        if not self.jobs().filter(**guard).update(**changes):
            return False
        if settlement.hold_until is not None:
            self._hold(job, settlement.hold_until, settlement.error)
        JobRun.objects.using(self.alias).create(
            job_id=job.pk,
            attempt=job.attempts,
            worker_id=job.worker_id,
            outcome=settlement.outcome,
            started_at=job.started_at or settlement.finished_at,
            finished_at=settlement.finished_at,
            error=settlement.error,
            error_code=settlement.error_code,
            exception=settlement.exception,
            traceback=settlement.traceback,
        )
        apply(job, changes)
        if (settlement.lost or not settlement.counted) and settlement.status in REQUEUED:
            job.attempts -= 1
            job.ghosts += settlement.lost
            job.snoozes += settlement.snoozed
        return True

    def _hold(self, job: Job, until: datetime, reason: str) -> None:
        """Hold ``job``'s limit key (its task, without one) until ``until``, fleet-wide, in the settle's transaction.

        The queued and delayed jobs it holds wait until then at once; workers
        leave out jobs created meanwhile once they re-read the holds (every interval).
        """
        key = job.limit_key or ""
        holds = Hold.objects.using(self.alias)
        if not holds.filter(task=job.task, key=key, until__lt=until).update(until=until, reason=reason):
            if not holds.filter(task=job.task, key=key).exists():
                holds.create(task=job.task, key=key, until=until, reason=reason)
        held = self.jobs().filter(task=job.task, run_at__lt=until).exclude(pk=job.pk)
        if key:
            held = held.filter(limit_key=key)
        held.filter(status=Status.QUEUED).update(status=Status.DELAYED, run_at=until)
        held.filter(status=Status.DELAYED).update(run_at=until)

    def holds(self) -> dict[tuple[str, str], float]:
        rows = Hold.objects.using(self.alias).filter(until__gt=timezone.now()).values_list("task", "key", "until")
        return {(task, key): until.timestamp() for task, key, until in rows}

    def _first_in_line(self, job: Job, run_at: datetime) -> datetime:
        """A run time that puts ``job`` ahead of the queued jobs of its tag and priority."""
        first = self.jobs().queued().filter(tag=job.tag, priority=job.priority).aggregate(first=Min("run_at"))["first"]
        return min(run_at, first - timedelta(microseconds=1)) if first is not None else run_at

    def was_settled(self, job: Job, settlement: Settlement) -> bool:
        runs = JobRun.objects.using(self.alias)
        return bool(
            runs.filter(job_id=job.pk, attempt=job.attempts, worker=job.worker_id, outcome=settlement.outcome).exists()
        )

    def record_progress(self, job_id: int, attempt: int, current: float, total: float, data: Any) -> None:
        self.jobs().active().filter(pk=job_id, attempts=attempt).update(
            progress_current=current, progress_total=total, progress_data=data
        )

    def limited_claims(self, limits: dict[str, Limit]) -> LimitedClaims:
        return LimitedClaims(self, limits)

    def write_logs(self, lines: list[JobLog]) -> None:
        """Insert a batch of job log lines."""
        JobLog.objects.using(self.alias).bulk_create(lines)

    # -- guarded transitions -------------------------------------------------

    def jobs_in(self, ids: Sequence[int]) -> list[Job]:
        return list(self.jobs().filter(pk__in=list(ids))) if ids else []

    def transition(self, ids: Sequence[int], statuses: Sequence[str], changes: dict[str, Any]) -> list[Job]:
        """Apply ``changes`` to the jobs among ``ids`` still in ``statuses``; return the changed rows."""
        if not ids:
            return []
        with self.atomic():
            candidates = list(
                self.jobs().in_states(list(statuses), list(ids)).select_for_update().values_list("pk", flat=True)
            )
            if not candidates:
                return []
            self.jobs().in_states(list(statuses), candidates).update(**changes)
            return list(self.jobs().filter(pk__in=candidates))

    def cancel(self, ids: Sequence[int]) -> list[Job]:
        return self.transition(ids, LIVE_STATUSES, cancelled())

    def retry(self, ids: Sequence[int], *, data: dict[str, Any] | None = None) -> list[Job]:
        changes = requeued()
        if data is not None:
            changes["data"] = data
        return self.transition(ids, RETRYABLE_STATUSES, changes)

    def run_now(self, ids: Sequence[int], statuses: Sequence[str] = RUNNABLE_NOW) -> list[Job]:
        return self.transition(ids, statuses, {"status": Status.QUEUED, "run_at": timezone.now()})

    def promote_due(self, tags: Sequence[str]) -> tuple[datetime | None, list[Job]]:
        delayed = self.jobs().delayed().of_tags(tags)
        # Read first, write only when something is due: on SQLite an UPDATE
        # takes the write lock even when it matches nothing.
        due = delayed.aggregate(next=Min("run_at"))["next"]
        now = timezone.now()
        if due is None or due > now:
            return due, []
        # In batches, each guarded by its status: two workers promoting at once
        # both report a job, which is harmless (a Redis push of the same id twice
        # is one entry).
        promoted: list[Job] = []
        while True:
            batch = list(
                delayed.filter(run_at__lte=now).order_by("run_at").values_list("id", flat=True)[:PROMOTE_BATCH]
            )
            if not batch:
                break
            promoted += self.retrying_locks(
                partial(self.transition, batch, [Status.DELAYED], {"status": Status.QUEUED})
            )
            if len(batch) < PROMOTE_BATCH:
                break
        return delayed.aggregate(next=Min("run_at"))["next"], promoted

    def expired_leases(self, limit: int) -> list[Job]:
        return list(
            self.jobs()
            .active()
            .filter(lease_expires_at__lt=timezone.now())
            .select_related("worker")
            .order_by("lease_expires_at")[:limit]
        )

    def release(self, job: Job, *, waiting: str = "") -> bool:
        mine = self.jobs().active().filter(pk=job.pk, worker_id=job.worker_id, attempts=job.attempts)
        changes: dict[str, Any] = dict(status=Status.QUEUED, worker_id=None, lease_expires_at=None, started_at=None)
        if waiting:
            changes.update(error=waiting, error_code=WAITING_FOR_CODE)
        released = bool(self.retrying_locks(lambda: mine.update(attempts=F("attempts") - 1, **changes)))
        if released and waiting:
            job.error, job.error_code = waiting, WAITING_FOR_CODE
        return released

    def without_code(self, tags: Sequence[str], known: Sequence[str], limit: int) -> list[tuple[int, str, str]]:
        unknown = self.jobs().queued().of_tags(list(tags)).filter(task_backend="").exclude(task__in=list(known))
        unknown = unknown.exclude(error_code=WAITING_FOR_CODE)
        return list(unknown.order_by().values_list("id", "task", "tag")[:limit])

    def note_waiting(self, ids: Sequence[int], why: str) -> int:
        if not ids:
            return 0
        # The first worker's note stands: others lacking the task write nothing.
        fresh = self.jobs().queued().filter(pk__in=list(ids)).exclude(error_code=WAITING_FOR_CODE)
        return int(self.retrying_locks(lambda: fresh.update(error=why, error_code=WAITING_FOR_CODE)))

    def requeue_unfinished(self, worker_id: int) -> list[Job]:
        now = timezone.now()
        # Read first, outside the transaction, then write row by row with a
        # guard: a job that finishes meanwhile is simply not put back.
        running = list(self.jobs().active().filter(worker_id=worker_id).values_list("id", "attempts", "started_at"))

        def put_back() -> list[int]:
            requeued_ids = []
            with self.atomic():
                for job_id, attempts, started_at in running:
                    # The interrupted attempt does not count against the job's retries.
                    mine = self.jobs().active().filter(id=job_id, worker_id=worker_id, attempts=attempts)
                    if mine.update(status=Status.QUEUED, attempts=F("attempts") - 1, lease_expires_at=None, run_at=now):
                        requeued_ids.append(job_id)
                        JobRun.objects.using(self.alias).create(
                            job_id=job_id,
                            attempt=attempts,
                            worker_id=worker_id,
                            outcome=Outcome.INTERRUPTED,
                            started_at=started_at or now,
                            finished_at=now,
                            error="The worker stopped before the job finished; it was put back in the queue.",
                        )
            return requeued_ids

        return self.jobs_in(self.retrying_locks(put_back))

    def delete_jobs(self, ids: Sequence[int]) -> int:
        ids = list(ids)
        with self.atomic():
            JobDependency.objects.using(self.alias).filter(child_id__in=ids)._raw_delete(self.alias)
            JobDependency.objects.using(self.alias).filter(parent_id__in=ids)._raw_delete(self.alias)
            JobLog.objects.using(self.alias).filter(job_id__in=ids)._raw_delete(self.alias)
            JobRun.objects.using(self.alias).filter(job_id__in=ids)._raw_delete(self.alias)
            return int(self.jobs().filter(pk__in=ids)._raw_delete(self.alias))

    def queued_unlimited(self, tag: str, limit: int) -> list[Entry]:
        return list(
            self.jobs()
            .queued()
            .filter(tag=tag, limit_key__isnull=True)
            .order_by("-priority", "run_at", "id")
            .values_list("id", "tag", "priority", "run_at")[:limit]
        )

    def runs_of(self, job_id: int) -> list[tuple[Any, ...]]:
        """The job's ended attempts, oldest first: (outcome, started_at, worker_id, worker name, error,
        exception, traceback)."""
        rows = JobRun.objects.using(self.alias).filter(job_id=job_id).select_related("worker").order_by("id")
        return [
            (
                run.outcome,
                run.started_at,
                run.worker_id,
                run.worker.name if run.worker_id and run.worker is not None else None,
                run.error,
                run.exception,
                run.traceback,
            )
            for run in rows
        ]


def _in_order_of(jobs: list[Job], ids: Sequence[int]) -> list[Job]:
    position = {job_id: index for index, job_id in enumerate(ids)}
    jobs.sort(key=lambda job: position.get(job.pk, 0))
    return jobs
