"""SQLite: claims and transitions as ``UPDATE ... RETURNING``, never a read then a write.

SQLite has one writer at a time, and a statement that starts by writing takes
the write lock before it reads, so two claims cannot interleave; waiting for
the lock goes through the busy timeout instead of failing with "database is
locked". A transaction that reads first and writes later can fail that way
(its snapshot may be stale by the time it wants the lock), so kinetik never
reads and then writes inside one transaction here.

A batch of attempts' ends is one transaction: one wait for the lock and one
commit, whatever its size.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from django.db import connections
from django.utils import timezone

from ..models import Job
from . import statements
from .base import Runnable, Settlement, Written
from .orm import OrmBackend
from .rows import REQUEUED, apply, claim_order, claimed_job, locked_retry, settled_changes, update_returning

T = TypeVar("T")

#: settles per statement (SQLite binds at most 32,766 parameters)
SETTLE_BATCH = 500


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


class SQLiteBackend(OrmBackend):
    supports_commit_watch = True

    def commit_counter(self) -> Callable[[], Any] | None:
        # PRAGMA data_version changes when another connection has committed: a
        # few microseconds a look, without reading a row.
        connection = connections[self.alias]
        connection.ensure_connection()
        raw = connection.connection
        return lambda: raw.execute("PRAGMA data_version").fetchone()[0]

    def retrying_locks(self, operation: Callable[[], T]) -> T:
        return locked_retry(operation)

    def _adapt(self, value: Any) -> Any:
        return connections[self.alias].ops.adapt_datetimefield_value(value)

    def _runnable_condition(self, runnable: Runnable) -> tuple[str, list[Any]]:
        lists = runnable.params()
        condition = statements.sqlite_runnable(len(lists[0]), len(lists[1]) if runnable.django_tasks else None)
        return condition, [value for values in lists for value in values]

    # -- claims ------------------------------------------------------------

    def claim(self, worker_id: int, tags: Sequence[str], runnable: Runnable, limit: int, lease: float) -> list[Job]:
        if limit <= 0 or not runnable:
            return []
        return self.retrying_locks(lambda: self._claim(worker_id, tags, runnable, limit, lease))

    def _claim(
        self, worker_id: int | None, tags: Sequence[str], runnable: Runnable, limit: int, lease: float
    ) -> list[Job]:
        now = timezone.now()
        expires = now + timedelta(seconds=lease)
        condition, values = self._runnable_condition(runnable)
        statement = statements.SQLITE_CLAIM.format(runnable=condition, returning=statements.SQLITE_CLAIMED_COLUMNS)
        claimed: list[Job] = []
        # One statement per tag, each taking the write lock as it starts: a tag
        # is only read once the ones before it had no more jobs.
        with connections[self.alias].cursor() as cursor:
            for tag in tags:
                params = [self._adapt(now), worker_id, self._adapt(expires), tag, *values, limit - len(claimed)]
                cursor.execute(statement, params)
                jobs = self._claimed_jobs(cursor.fetchall(), worker_id, now, expires)
                jobs.sort(key=claim_order)
                claimed += jobs
                if len(claimed) >= limit:
                    break
        return claimed

    def claim_ids(self, worker_id: int | None, ids: Sequence[int], runnable: Runnable, lease: float) -> list[Job]:
        if not ids or not runnable:
            return []
        now = timezone.now()
        expires = now + timedelta(seconds=lease)
        condition, values = self._runnable_condition(runnable)
        statement = statements.SQLITE_CLAIM_IDS.format(
            ids=", ".join(["%s"] * len(ids)), runnable=condition, returning=statements.SQLITE_CLAIMED_COLUMNS
        )
        params = [self._adapt(now), worker_id, self._adapt(expires), *ids, *values]

        def claim() -> list[Job]:
            with connections[self.alias].cursor() as cursor:
                cursor.execute(statement, params)
                return self._claimed_jobs(cursor.fetchall(), worker_id, now, expires)

        jobs = self.retrying_locks(claim)
        position = {job_id: index for index, job_id in enumerate(ids)}
        jobs.sort(key=lambda job: position.get(job.id, 0))
        return jobs

    def _claimed_jobs(
        self, rows: list[tuple[Any, ...]], worker_id: int | None, now: datetime, expires: datetime
    ) -> list[Job]:
        """Job rows from the columns a claim returns (the rest is known), without Django's row building."""
        connection = connections[self.alias]
        convert = connection.ops.convert_datetimefield_value  # type: ignore[attr-defined]

        def moment(value: Any) -> datetime:
            return convert(value, None, connection)  # type: ignore[no-any-return]

        return [
            claimed_job(self.alias, row, worker_id=worker_id, now=now, expires=expires, json=_json, moment=moment)
            for row in rows
        ]

    # -- settles -------------------------------------------------------------

    def settle_many(self, items: Sequence[tuple[Job, Settlement]], *, announce: bool = False) -> Written:
        if not items:
            return Written([])
        if not all(settlement.plain for _, settlement in items):
            return super().settle_many(items)

        def write() -> Written:
            with self.atomic():
                return self._settle(items)

        return self.retrying_locks(write)

    def _settle(self, items: Sequence[tuple[Job, Settlement]]) -> Written:
        """The guarded job updates and their JobRun rows, inside the caller's transaction."""
        adapt = self._adapt
        settled: dict[int, bool] = {}  # applied job id -> another job waits for it
        with connections[self.alias].cursor() as cursor:
            for start in range(0, len(items), SETTLE_BATCH):
                batch = items[start : start + SETTLE_BATCH]
                params: list[Any] = []
                for job, settlement in batch:
                    retried = settlement.status in REQUEUED
                    result = None if retried or settlement.result is None else json.dumps(settlement.result)
                    params += [
                        job.id,
                        job.attempts,
                        job.worker_id,
                        str(settlement.status),
                        result,
                        settlement.error,
                        settlement.error_code,
                        adapt(settlement.run_at or settlement.finished_at) if retried else None,
                        adapt(settlement.finished_at),
                    ]
                cursor.execute(statements.sqlite_settle(len(batch)), params)
                done = {row[0]: bool(row[1]) for row in cursor.fetchall()}
                runs: list[Any] = []
                for job, settlement in batch:
                    if job.id in done:
                        runs += [
                            job.id,
                            job.attempts,
                            job.worker_id,
                            str(settlement.outcome),
                            adapt(job.started_at or settlement.finished_at),
                            adapt(settlement.finished_at),
                            settlement.error,
                            settlement.error_code,
                            settlement.exception,
                            settlement.traceback,
                        ]
                if done:
                    cursor.execute(statements.sqlite_insert_runs(len(done)), runs)
                settled |= done
        applied, awaited = [], []
        for job, settlement in items:
            ok = job.id in settled
            if ok:
                apply(job, settled_changes(settlement))
            applied.append(ok)
            awaited.append(settled.get(job.id, False))
        return Written(applied, awaited)

    def transition(self, ids: Sequence[int], statuses: Sequence[str], changes: dict[str, Any]) -> list[Job]:
        return update_returning(self, ids, statuses, changes)
