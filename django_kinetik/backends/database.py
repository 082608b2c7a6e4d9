"""The database backend: claims with one atomic statement, settles with one transaction.

How a claim stays correct and fast (the plan is shown in ``docs/claiming.md``):

* PostgreSQL: ``UPDATE ... WHERE id = ANY(ARRAY(SELECT id ... LIMIT n FOR
  UPDATE SKIP LOCKED)) RETURNING``. One round trip. Concurrent workers skip each other's locked rows
  instead of queueing behind them, and the row lock makes PostgreSQL re-check
  ``status = 'queued'`` on the current row version, so a job is taken once.
  The partial index ``kinetik_job_claim`` (status, tag, priority DESC, run_at,
  id) WHERE status = 'queued' matches the WHERE and ORDER BY exactly: the scan
  reads only the rows it takes, however many finished jobs the table holds.
* SQLite: ``UPDATE ... WHERE id IN (SELECT ... LIMIT n) RETURNING``. SQLite
  has one writer at a time, and a statement that starts by writing takes the
  write lock before it reads, so two claims cannot interleave; waiting for the
  lock goes through the busy timeout instead of failing with "database is
  locked". We never read and then write inside one transaction on SQLite.
* MySQL/MariaDB (and anything else): the ORM's ``select_for_update(skip_locked=True)``
  and an ``UPDATE`` inside one transaction, because MySQL can neither
  ``UPDATE ... RETURNING`` nor update a table it selects from in a subquery.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, TypeVar

from django.db import OperationalError, connections, transaction
from django.db.models import F, Min, Q
from django.utils import timezone

from ..models import Job, JobRun, Status, TagState, Worker
from . import sql
from .base import Backend, Runnable, Settlement, WorkerInfo

T = TypeVar("T")

REQUEUED = (Status.QUEUED, Status.DELAYED)


def execute_prepared(alias: str, statement: str, params: list[Any]) -> list[tuple[Any, ...]]:
    """Run a hot-path statement on PostgreSQL with server-side binding, prepared.

    Django's cursors bind parameters on the client, turning arrays of a
    hundred values into SQL text in Python (8 ms for a batch of 100 settles),
    and plan every statement anew. A plain psycopg cursor on the same
    connection (so inside the caller's transaction) sends the values as they
    are and reuses the plan.
    """
    from psycopg import Cursor

    wrapper = connections[alias]
    wrapper.ensure_connection()
    with wrapper.wrap_database_errors, Cursor(wrapper.connection) as cursor:
        cursor.execute(statement, params, prepare=True)
        return cursor.fetchall()


#: what every claimed row holds; the claim returns the rest
_CLAIMED: dict[str, Any] = {
    "status": Status.ACTIVE,
    "result": None,
    "error": "",
    "error_code": "",
    "finished_at": None,
    "progress_current": None,
    "progress_total": None,
    "progress_data": None,
}


def _sqlite_runnable(runnable: Runnable) -> tuple[str, list[Any]]:
    """The runnable condition for SQLite's claim, and its parameters."""
    lists = runnable.params()
    condition = sql.sqlite_runnable(len(lists[0]), len(lists[1]) if runnable.django_tasks else None)
    return condition, [value for values in lists for value in values]


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, (str, bytes)) else value


def _from_epoch(seconds: Any) -> datetime:
    return datetime.fromtimestamp(float(seconds), tz=UTC)


def settled_changes(settlement: Settlement) -> dict[str, Any]:
    """The job fields an attempt's end sets."""
    changes: dict[str, Any] = {
        "status": settlement.status,
        "lease_expires_at": None,
        "error": settlement.error,
        "error_code": settlement.error_code,
    }
    if settlement.status in REQUEUED:
        changes.update(run_at=settlement.run_at or settlement.finished_at, finished_at=None)
    else:
        changes.update(result=settlement.result, finished_at=settlement.finished_at)
    return changes


def _apply(job: Job, changes: dict[str, Any]) -> None:
    """Mirror a write on the in-memory row (expressions such as F() are left out)."""
    for name, value in changes.items():
        if not hasattr(value, "resolve_expression"):
            setattr(job, name, value)


def _claim_order(job: Job) -> tuple[int, datetime, int]:
    return (-job.priority, job.run_at, job.pk)


class DatabaseBackend(Backend):
    """Jobs claimed from and settled in the Django database ``alias``."""

    def __init__(self, alias: str = "default") -> None:
        self.alias = alias

    # -- helpers -----------------------------------------------------------

    @property
    def vendor(self) -> str:
        return connections[self.alias].vendor

    def _jobs(self) -> Any:
        return Job.objects.using(self.alias)

    def _adapt(self, value: datetime) -> Any:
        return connections[self.alias].ops.adapt_datetimefield_value(value)

    def _execute_prepared(self, statement: str, params: list[Any]) -> list[tuple[Any, ...]]:
        return execute_prepared(self.alias, statement, params)

    def retrying_locks(self, operation: Callable[[], T]) -> T:
        """Run ``operation``, waiting out SQLite's "database is locked" a few times.

        SQLite's busy timeout already waits for the writer lock; this covers the
        rare case where a busy handler is not invoked (a snapshot that went
        stale in WAL mode) so a worker never crashes on lock contention.
        """
        if self.vendor != "sqlite":
            return operation()
        pause = 0.01
        for _ in range(50):
            try:
                return operation()
            except OperationalError as error:
                if "locked" not in str(error) and "busy" not in str(error):
                    raise
                time.sleep(pause)
                pause = min(pause * 2, 0.5)
        return operation()

    # -- workers -----------------------------------------------------------

    def register_worker(self, info: WorkerInfo) -> int:
        now = timezone.now()
        worker = Worker.objects.using(self.alias).create(
            name=info.name,
            host=info.host,
            pid=info.pid,
            tags=list(info.tags),
            concurrency=info.concurrency,
            started_at=now,
            last_heartbeat=now,
        )
        return worker.pk

    def retire_worker(self, worker_id: int, stats: dict[str, int]) -> None:
        now = timezone.now()
        self.retrying_locks(
            lambda: (
                Worker.objects.using(self.alias)
                .filter(pk=worker_id)
                .update(
                    state=Worker.State.OFFLINE,
                    stopped_at=now,
                    last_heartbeat=now,
                    **stats,
                )
            )
        )

    def heartbeat(self, worker_id: int, lease: float, running: Sequence[int], stats: dict[str, int]) -> None:
        now = timezone.now()

        def beat() -> None:
            Worker.objects.using(self.alias).filter(pk=worker_id).update(last_heartbeat=now, **stats)
            if running:
                self._jobs().filter(id__in=list(running), status=Status.ACTIVE, worker_id=worker_id).update(
                    lease_expires_at=now + timedelta(seconds=lease),
                )

        self.retrying_locks(beat)

    def expired_leases(self, limit: int) -> list[Job]:
        return list(
            self._jobs()
            .filter(status=Status.ACTIVE, lease_expires_at__lt=timezone.now())
            .select_related("worker")
            .order_by("lease_expires_at")[:limit]
        )

    def mark_lost_workers(self, silent_for: float) -> int:
        cutoff = timezone.now() - timedelta(seconds=silent_for)
        return self.retrying_locks(
            lambda: (
                Worker.objects.using(self.alias)
                .filter(state__in=(Worker.State.ONLINE, Worker.State.STOPPING), last_heartbeat__lt=cutoff)
                .update(state=Worker.State.LOST)
            )
        )

    def paused_tags(self) -> set[str]:
        return set(TagState.objects.using(self.alias).filter(paused=True).values_list("tag", flat=True))

    # -- the hot path ------------------------------------------------------

    def claim(self, worker_id: int, tag: str, runnable: Runnable, limit: int, lease: float) -> list[Job]:
        if limit <= 0 or not runnable:
            return []
        now = timezone.now()
        expires = now + timedelta(seconds=lease)
        vendor = self.vendor
        if vendor == "postgresql":
            statement = sql.POSTGRES_CLAIM[runnable.django_tasks]
            rows = self._execute_prepared(statement, [now, worker_id, expires, tag, *runnable.params(), limit])
            jobs = self._claimed_jobs(rows, worker_id, now, expires)
        elif vendor == "sqlite":
            condition, values = _sqlite_runnable(runnable)
            statement = sql.SQLITE_CLAIM.format(runnable=condition)
            params = [self._adapt(now), worker_id, self._adapt(expires), tag, *values, limit]
            jobs = self.retrying_locks(lambda: list(self._jobs().raw(statement, params)))
        else:
            jobs = self._claim_with_orm(worker_id, tag, runnable, limit, now, expires)
        jobs.sort(key=_claim_order)
        return jobs

    def _claimed_jobs(self, rows: list[tuple[Any, ...]], worker_id: int, now: datetime, expires: datetime) -> list[Job]:
        """Job rows built from the few columns a PostgreSQL claim returns.

        The claim knows most of a claimed row already (status, worker, lease,
        start); it returns the rest, times as epoch seconds. Django's row
        building (six time zone conversions per row, done in Python) was two
        thirds of a busy worker's CPU.
        """
        jobs = []
        for row in rows:
            (job_id, task, task_backend, tag_, priority, data, options) = row[:7]
            (attempts, ghosts, unique_key, limit_key, run_at, created_at) = row[7:]
            jobs.append(
                Job.loaded(
                    self.alias,
                    {
                        **_CLAIMED,
                        "id": job_id,
                        "task": task,
                        "task_backend": task_backend,
                        "tag": tag_,
                        "priority": priority,
                        "data": _json(data),
                        "options": _json(options),
                        "attempts": attempts,
                        "ghosts": ghosts,
                        "unique_key": unique_key,
                        "limit_key": limit_key,
                        "run_at": _from_epoch(run_at),
                        "created_at": _from_epoch(created_at),
                        "started_at": now,
                        "worker_id": worker_id,
                        "lease_expires_at": expires,
                    },
                )
            )
        return jobs

    def claim_ids(self, worker_id: int, ids: Sequence[int], runnable: Runnable, lease: float) -> list[Job]:
        if not ids or not runnable:
            return []
        now = timezone.now()
        expires = now + timedelta(seconds=lease)
        vendor = self.vendor
        if vendor == "postgresql":
            statement = sql.POSTGRES_CLAIM_IDS[runnable.django_tasks]
            rows = self._execute_prepared(statement, [now, worker_id, expires, list(ids), *runnable.params()])
            jobs = self._claimed_jobs(rows, worker_id, now, expires)
        elif vendor == "sqlite":
            condition, values = _sqlite_runnable(runnable)
            statement = sql.SQLITE_CLAIM_IDS.format(ids=", ".join(["%s"] * len(ids)), runnable=condition)
            params = [self._adapt(now), worker_id, self._adapt(expires), *ids, *values]
            jobs = self.retrying_locks(lambda: list(self._jobs().raw(statement, params)))
        else:
            jobs = self._claim_with_orm(worker_id, None, runnable, len(ids), now, expires, ids=ids)
        position = {job_id: index for index, job_id in enumerate(ids)}
        jobs.sort(key=lambda job: position.get(job.pk, 0))
        return jobs

    def _claim_with_orm(
        self,
        worker_id: int,
        tag: str | None,
        runnable: Runnable,
        limit: int,
        now: datetime,
        expires: datetime,
        ids: Sequence[int] | None = None,
    ) -> list[Job]:
        """The claim for MySQL/MariaDB: the next jobs of ``tag``, or those of ``ids`` still queued."""
        condition = Q(task__in=runnable.tasks)
        if runnable.django_tasks:
            condition |= ~Q(task_backend="") & ~Q(task__in=runnable.excluded)
        candidates = self._jobs().filter(condition, status=Status.QUEUED)
        candidates = candidates.filter(tag=tag) if ids is None else candidates.filter(pk__in=list(ids))
        with transaction.atomic(using=self.alias):
            ids = list(
                candidates.select_for_update(skip_locked=True)
                .order_by("-priority", "run_at", "id")
                .values_list("id", flat=True)[:limit]
            )
            if not ids:
                return []
            self._jobs().filter(id__in=ids).update(
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
        return list(self._jobs().filter(id__in=ids))

    def promote_due(self, tags: Sequence[str]) -> tuple[datetime | None, list[tuple[int, str, int]]]:
        delayed = self._jobs().filter(status=Status.DELAYED, tag__in=tags)
        # Read first, write only when something is due: on SQLite an UPDATE
        # takes the write lock even when it matches nothing.
        due = delayed.aggregate(next=Min("run_at"))["next"]
        now = timezone.now()
        if due is None or due > now:
            return due, []
        # In batches, each guarded by its status: two workers promoting at once
        # both report a job, which is harmless (a Redis push of the same id twice
        # is one entry).
        promoted: list[tuple[int, str, int]] = []
        while True:
            batch = list(delayed.filter(run_at__lte=now).order_by("run_at").values_list("id", "tag", "priority")[:1000])
            if not batch:
                break
            self.retrying_locks(
                partial(delayed.filter(pk__in=[job_id for job_id, _, _ in batch]).update, status=Status.QUEUED)
            )
            promoted += batch
            if len(batch) < 1000:
                break
        return delayed.aggregate(next=Min("run_at"))["next"], promoted

    def settle(self, job: Job, settlement: Settlement) -> bool:
        def write() -> bool:
            # The UPDATE comes first so SQLite takes the write lock before any read.
            with transaction.atomic(using=self.alias):
                return self._settle_one(job, settlement)

        return self.retrying_locks(write)

    def settle_many(self, items: Sequence[tuple[Job, Settlement]]) -> list[bool]:
        if not items:
            return []
        if self.vendor == "postgresql" and not any(settlement.lost for _, settlement in items):
            return self._settle_many_postgres(items)

        def write() -> list[bool]:
            with transaction.atomic(using=self.alias):
                return [self._settle_one(job, settlement) for job, settlement in items]

        return self.retrying_locks(write)

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
                # A ghost run is not an attempt; it is counted separately.
                changes.update(attempts=F("attempts") - 1, ghosts=F("ghosts") + 1)
        if not self._jobs().filter(**guard).update(**changes):
            return False
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
        _apply(job, changes)
        return True

    def _settle_many_postgres(self, items: Sequence[tuple[Job, Settlement]]) -> list[bool]:
        """Every job row and JobRun row of the batch in one statement (see sql.SETTLE_MANY)."""
        from psycopg.types.json import Jsonb

        columns: dict[str, list[Any]] = {name: [] for name in sql.SETTLE_MANY_COLUMNS}
        for job, settlement in items:
            requeued = settlement.status in REQUEUED
            columns["id"].append(job.pk)
            columns["attempt"].append(job.attempts)
            columns["worker_id"].append(job.worker_id)
            columns["status"].append(settlement.status)
            columns["result"].append(None if requeued or settlement.result is None else Jsonb(settlement.result))
            columns["error"].append(settlement.error)
            columns["error_code"].append(settlement.error_code)
            columns["exception"].append(settlement.exception)
            columns["traceback"].append(settlement.traceback)
            columns["run_at"].append((settlement.run_at or settlement.finished_at) if requeued else None)
            columns["finished_at"].append(settlement.finished_at)
            columns["outcome"].append(settlement.outcome)
            columns["started_at"].append(job.started_at or settlement.finished_at)
        rows = self._execute_prepared(sql.SETTLE_MANY, [*columns.values(), columns["id"]])
        settled = dict(rows)
        applied = []
        for job, settlement in items:
            ok = job.pk in settled
            if ok:
                _apply(job, settled_changes(settlement))
                job.awaited = settled[job.pk]  # type: ignore[attr-defined]
            applied.append(ok)
        return applied

    def jobs_ended(self, jobs: Sequence[Job]) -> None:
        from .. import dependencies

        # A PostgreSQL batch settle said which of its jobs others wait for; for
        # the rest, one look at the arrows.
        dependencies.parents_ended(self.alias, [job.pk for job in jobs if getattr(job, "awaited", True)])

    def was_settled(self, job: Job, settlement: Settlement) -> bool:
        """Whether this attempt's end is already recorded (a settle whose answer was lost)."""
        return (
            JobRun.objects.using(self.alias)
            .filter(job_id=job.pk, attempt=job.attempts, worker=job.worker_id, outcome=settlement.outcome)
            .exists()
        )

    def release(self, job: Job) -> bool:
        return bool(
            self.retrying_locks(
                lambda: (
                    self._jobs()
                    .filter(pk=job.pk, status=Status.ACTIVE, worker_id=job.worker_id, attempts=job.attempts)
                    .update(
                        status=Status.QUEUED,
                        attempts=F("attempts") - 1,
                        worker_id=None,
                        lease_expires_at=None,
                        started_at=None,
                    )
                )
            )
        )

    def requeue_unfinished(self, worker_id: int) -> list[int]:
        from ..models import Outcome

        now = timezone.now()

        # Read first, outside the transaction, then write row by row with a
        # guard: a job that finishes meanwhile is simply not put back.
        running = list(
            self._jobs().filter(status=Status.ACTIVE, worker_id=worker_id).values_list("id", "attempts", "started_at")
        )

        def put_back() -> list[int]:
            requeued = []
            with transaction.atomic(using=self.alias):
                for job_id, attempts, started_at in running:
                    # The interrupted attempt does not count against the job's retries.
                    if (
                        self._jobs()
                        .filter(
                            id=job_id,
                            status=Status.ACTIVE,
                            worker_id=worker_id,
                            attempts=attempts,
                        )
                        .update(
                            status=Status.QUEUED,
                            attempts=F("attempts") - 1,
                            lease_expires_at=None,
                            run_at=now,
                        )
                    ):
                        requeued.append(job_id)
                        JobRun.objects.using(self.alias).create(
                            job_id=job_id,
                            attempt=attempts,
                            worker_id=worker_id,
                            outcome=Outcome.INTERRUPTED,
                            started_at=started_at or now,
                            finished_at=now,
                            error="The worker stopped before the job finished; it was put back in the queue.",
                        )
            return requeued

        return self.retrying_locks(put_back)
