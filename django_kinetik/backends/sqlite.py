"""SQLite: claims and transitions as ``UPDATE ... RETURNING``, never a read then a write.

SQLite has one writer at a time, and a statement that starts by writing takes
the write lock before it reads, so two claims cannot interleave; waiting for
the lock goes through the busy timeout instead of failing with "database is
locked". A transaction that reads first and writes later can fail that way
(its snapshot may be stale by the time it wants the lock), so kinetik never
reads and then writes inside one transaction here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any, TypeVar

from django.db import connections
from django.utils import timezone

from ..models import Job
from . import statements
from .base import Runnable
from .orm import OrmBackend, claim_order, locked_retry, update_returning

T = TypeVar("T")


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

    def claim(self, worker_id: int, tags: Sequence[str], runnable: Runnable, limit: int, lease: float) -> list[Job]:
        if limit <= 0 or not runnable:
            return []
        now = timezone.now()
        expires = now + timedelta(seconds=lease)
        condition, values = self._runnable_condition(runnable)
        statement = statements.SQLITE_CLAIM.format(runnable=condition)
        claimed: list[Job] = []
        # One statement per tag, each taking the write lock as it starts: a tag
        # is only read once the ones before it had no more jobs.
        for tag in tags:
            params = [self._adapt(now), worker_id, self._adapt(expires), tag, *values, limit - len(claimed)]
            jobs = self.retrying_locks(lambda: list(self.jobs().raw(statement, params)))  # noqa: B023
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
        statement = statements.SQLITE_CLAIM_IDS.format(ids=", ".join(["%s"] * len(ids)), runnable=condition)
        params = [self._adapt(now), worker_id, self._adapt(expires), *ids, *values]
        jobs = self.retrying_locks(lambda: list(self.jobs().raw(statement, params)))
        position = {job_id: index for index, job_id in enumerate(ids)}
        jobs.sort(key=lambda job: position.get(job.pk, 0))
        return jobs

    def transition(self, ids: Sequence[int], statuses: Sequence[str], changes: dict[str, Any]) -> list[Job]:
        return update_returning(self, ids, statuses, changes)
