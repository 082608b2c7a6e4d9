"""PostgreSQL: claims and settles in one statement each, bound on the server.

How a claim stays correct and fast (the plan is shown in ``docs/claiming.md``):
``UPDATE ... WHERE id = ANY(ARRAY(SELECT ... FOR UPDATE SKIP LOCKED))
RETURNING``, one round trip for every tag the worker serves. Concurrent
workers skip each other's locked rows instead of queueing behind them, and
the row lock makes PostgreSQL re-check ``status = 'queued'`` on the current
row version, so a job is taken once. The partial index ``kinetik_job_claim``
(status, tag, priority DESC, run_at, id) WHERE status = 'queued' matches the
WHERE and ORDER BY exactly: a claim reads only the rows it takes, however many
finished jobs the table holds.

Statements go through Django's cursor wrapper (so ``assertNumQueries``, the
debug toolbar and database instrumentation see them) over a server-binding
psycopg cursor: arrays travel as binary parameters instead of SQL text built
in Python. They are prepared only where the project turns psycopg's
``prepare_threshold`` on in OPTIONS, and never behind a transaction-mode pooler
(the alias has ``DISABLE_SERVER_SIDE_CURSORS``), where the session features
follow ``pooling.py``.
"""

from __future__ import annotations

import contextlib
import json
import zlib
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connections, transaction
from django.db.models import QuerySet
from django.utils import timezone

from ..models import Job, Status
from . import pooling, statements
from .base import Runnable, Settlement, Written
from .orm import OrmBackend
from .rows import apply, claimed_job, settled_changes, update_returning

#: the NOTIFY channel; the insert trigger (migration 0002) and the workers' listener use the same name
CHANNEL = "kinetik"
#: the live feed's channels when it travels through PostgreSQL (see feed/transport.py): every
#: event, and the ids of the jobs that reached an end (the settle sends those itself)
EVENTS_CHANNEL = "kinetik_events"
FINISHED_CHANNEL = "kinetik_finished"
#: advisory locks take numbers: a lock's name becomes this (the purge's, "kinetik.purge", is "kine")
_LOCK_KEYS = {"kinetik.purge": 0x6B696E65}

#: what a just-inserted job holds besides what the insert gives it
_NEW_JOB: dict[str, Any] = {
    "result": None,
    "error": "",
    "error_code": "",
    "attempts": 0,
    "ghosts": 0,
    "snoozes": 0,
    "unique_key": None,
    "started_at": None,
    "finished_at": None,
    "progress_current": None,
    "progress_total": None,
    "progress_data": None,
    "worker_id": None,
    "lease_expires_at": None,
}
_ENCODE = json.JSONEncoder(separators=(",", ":")).encode


#: pooled -> the cursor class (made on first use: psycopg is imported only by a project on PostgreSQL)
_cursor_classes: dict[bool, type] = {}


def _cursor_class(pooled: bool) -> type:
    """A psycopg cursor that binds on the server; behind a transaction pooler, one that never prepares.

    Django's cursors bind on the client: the hot path's arrays would be turned
    into SQL text in Python. Only kinetik's own statements go through this
    cursor. Whether psycopg prepares them is the connection's
    ``prepare_threshold``: None (Django's default) never, a number set in the
    database's OPTIONS after that many runs (its plan is then made once per connection).
    Behind a transaction pooler never, whatever the threshold: a prepared
    statement lives in one server session, and the pooler lends another.
    """
    found = _cursor_classes.get(pooled)
    if found is None:
        from psycopg import Cursor

        class UnpreparedCursor(Cursor):  # type: ignore[type-arg]
            def execute(self, query: Any, params: Any = None, *, prepare: bool | None = None, **kwargs: Any) -> Any:
                return super().execute(query, params, prepare=False, **kwargs)

        found = _cursor_classes[pooled] = UnpreparedCursor if pooled else Cursor
    return found


def advisory_key(name: str) -> int:
    """The number of the advisory lock called ``name``: the same in every process."""
    return _LOCK_KEYS.get(name) or zlib.crc32(name.encode())


def _json(value: Any) -> Any:
    if value == "{}":  # most jobs' options
        return {}
    return json.loads(value) if isinstance(value, (str, bytes)) else value


def _from_epoch(seconds: Any) -> datetime:
    return datetime.fromtimestamp(float(seconds), tz=UTC)


class PostgresBackend(OrmBackend):
    supports_skip_locked = True
    supports_count_estimates = True
    supports_kept_counts = True

    @property
    def supports_notify(self) -> bool:  # type: ignore[override]
        """LISTEN needs a session: not through a transaction pooler, unless LISTEN_DATABASE goes around it."""
        return pooling.has_session(self.alias)

    def execute(self, statement: str, params: list[Any]) -> list[tuple[Any, ...]]:
        """Run one of kinetik's statements bound on the server, through Django's cursor wrapper."""
        wrapper = connections[self.alias]
        wrapper.ensure_connection()
        raw = _cursor_class(pooling.transaction_pooled(self.alias))(wrapper.connection)
        # The wrapper Django puts around its own cursors: the query is logged and instrumented like any.
        cursor = wrapper.make_debug_cursor(raw) if wrapper.queries_logged else wrapper.make_cursor(raw)  # type: ignore[arg-type]
        with cursor:
            cursor.execute(statement, params)
            return cursor.fetchall()  # every statement of kinetik's returns rows

    # -- creating ------------------------------------------------------------

    def insert_jobs(
        self, fields: dict[str, Any], payloads: list[dict[str, Any]], *, limit_keys: list[str] | None, batch_size: int
    ) -> list[Job]:
        """One ``INSERT ... SELECT FROM unnest`` per batch, the data as one binary array of JSON texts.

        Django's ``bulk_create`` spends its time building a model and a
        parameter per column per job, and binding them as SQL text. Rows come
        back as Job objects built from what was inserted, without a read.
        """
        if "error" in fields:  # a job cancelled at creation (a parent had failed): rare, the ORM's
            return super().insert_jobs(fields, payloads, limit_keys=limit_keys, batch_size=batch_size)
        shared = [
            json.dumps(fields[name]) if name == "options" else fields[name] for name in statements.INSERT_SHARED_COLUMNS
        ]
        jobs: list[Job] = []
        batch_size = max(batch_size, 5000)
        # All or nothing across batches; one statement is atomic by itself.
        atomic = transaction.atomic(using=self.alias) if len(payloads) > batch_size else contextlib.nullcontext()
        with atomic:
            for start in range(0, len(payloads), batch_size):
                batch = payloads[start : start + batch_size]
                texts = [_ENCODE(payload) for payload in batch]
                if limit_keys is None:
                    rows = self.execute(statements.INSERT_JOBS, [*shared, texts])
                    keys: list[str | None] = [None] * len(batch)
                else:
                    keys = list(limit_keys[start : start + batch_size])
                    rows = self.execute(statements.INSERT_KEYED_JOBS, [*shared, texts, keys])
                # The sequence hands out ids in insertion order, which follows the array.
                ids = sorted(row[0] for row in rows)
                jobs += [
                    self._inserted(job_id, payload, key, fields)
                    for job_id, payload, key in zip(ids, batch, keys, strict=True)
                ]
        return jobs

    def _inserted(self, job_id: int, data: dict[str, Any], limit_key: str | None, fields: dict[str, Any]) -> Job:
        return Job.loaded(self.alias, {**_NEW_JOB, **fields, "id": job_id, "data": data, "limit_key": limit_key})

    # -- the hot path ------------------------------------------------------

    def claim(self, worker_id: int, tags: Sequence[str], runnable: Runnable, limit: int, lease: float) -> list[Job]:
        if limit <= 0 or not runnable or not tags:
            return []
        now = timezone.now()
        expires = now + timedelta(seconds=lease)
        statement = statements.POSTGRES_CLAIM[runnable.django_tasks]
        params = [now, worker_id, expires, list(tags), *runnable.params(), limit, limit]
        jobs = self._claimed_jobs(self.execute(statement, params), worker_id, now, expires)
        order = {tag: index for index, tag in enumerate(tags)}
        jobs.sort(key=lambda job: (order[job.tag], -job.priority, job.run_at, job.id))
        return jobs

    def claim_ids(self, worker_id: int | None, ids: Sequence[int], runnable: Runnable, lease: float) -> list[Job]:
        if not ids or not runnable:
            return []
        now = timezone.now()
        expires = now + timedelta(seconds=lease)
        statement = statements.POSTGRES_CLAIM_IDS[runnable.django_tasks]
        rows = self.execute(statement, [now, worker_id, expires, list(ids), *runnable.params()])
        jobs = self._claimed_jobs(rows, worker_id, now, expires)
        position = {job_id: index for index, job_id in enumerate(ids)}
        jobs.sort(key=lambda job: position.get(job.id, 0))
        return jobs

    def _claimed_jobs(
        self, rows: list[tuple[Any, ...]], worker_id: int | None, now: datetime, expires: datetime
    ) -> list[Job]:
        """Job rows built from the few columns a claim returns.

        The claim knows most of a claimed row already (status, worker, lease,
        start); it returns the rest, times as epoch seconds. Django's row
        building (six time zone conversions per row, done in Python) was two
        thirds of a busy worker's CPU.
        """
        return [
            claimed_job(self.alias, row, worker_id=worker_id, now=now, expires=expires, json=_json, moment=_from_epoch)
            for row in rows
        ]

    def settle_many(self, items: Sequence[tuple[Job, Settlement]], *, announce: bool = False) -> Written:
        """Every job row and JobRun row of the batch in one statement (see statements.SETTLE_MANY)."""
        if not items:
            return Written([])
        if not all(settlement.plain for _, settlement in items):
            return super().settle_many(items)
        params = self._settle_params(items)
        if announce:
            rows = self.execute(statements.SETTLE_MANY_ANNOUNCED, [*params, FINISHED_CHANNEL])
        else:
            rows = self.execute(statements.SETTLE_MANY, params)
        return self._written(items, rows, announced=announce)

    @staticmethod
    def _settle_params(items: Sequence[tuple[Job, Settlement]]) -> list[Any]:
        """The ends as one JSON array of arrays (see statements.SETTLE_FIELDS)."""
        rows = []
        for job, settlement in items:
            retried = settlement.status in (Status.QUEUED, Status.DELAYED)
            finished = settlement.finished_at.isoformat()
            rows.append(
                [
                    job.id,
                    job.attempts,
                    job.worker_id,
                    settlement.status,
                    None if retried else settlement.result,
                    settlement.error,
                    settlement.error_code,
                    settlement.exception,
                    settlement.traceback,
                    (settlement.run_at.isoformat() if settlement.run_at else finished) if retried else None,
                    finished,
                    settlement.outcome,
                    job.started_at.isoformat() if job.started_at else finished,
                ]
            )
        return [_ENCODE(rows)]

    @staticmethod
    def _written(
        items: Sequence[tuple[Job, Settlement]], rows: Sequence[tuple[Any, ...]], *, announced: bool = False
    ) -> Written:
        settled = dict(rows)
        applied, awaited = [], []
        for job, settlement in items:
            ok = job.id in settled
            if ok:
                apply(job, settled_changes(settlement))
            applied.append(ok)
            awaited.append(bool(settled.get(job.id)))
        return Written(applied, awaited, announced)

    # -- guarded transitions -------------------------------------------------

    def transition(self, ids: Sequence[int], statuses: Sequence[str], changes: dict[str, Any]) -> list[Job]:
        return update_returning(self, ids, statuses, changes)

    def runs_of(self, job_id: int) -> list[tuple[Any, ...]]:
        # Prepared: a worker reads this as each django.tasks job starts, and
        # building the ORM query cost more than running it.
        return self.execute(statements.RUNS_OF, [job_id])

    # -- what only PostgreSQL does here -------------------------------------

    def connect_apart(self, purpose: str) -> Any:
        """A new autocommit psycopg connection to this database, outside Django's (to LISTEN, or publish).

        Named "kinetik <purpose>" in ``pg_stat_activity`` (unless the project
        names its connections in OPTIONS), so a DBA can tell what holds it.
        """
        import psycopg

        params = pooling.session_params(self.alias)
        params.setdefault("application_name", f"kinetik {purpose}")
        return psycopg.connect(**params, autocommit=True)

    def listening_connection(self, purpose: str, *channels: str) -> Any:
        """:meth:`connect_apart`, LISTENing on ``channels``."""
        connection = self.connect_apart(purpose)
        for channel in channels:
            connection.execute(statements.listen(channel))
        return connection

    def restarted_since(self, moment: datetime) -> bool:
        with connections[self.alias].cursor() as cursor:
            cursor.execute(statements.POSTGRES_STARTED_AFTER, [moment])
            return bool(cursor.fetchone()[0])

    def wake_workers(self, tags: set[str]) -> None:
        if not self.supports_notify:
            return  # nobody LISTENs: idle workers poll
        with connections[self.alias].cursor() as cursor:
            for tag in sorted(tags):
                cursor.execute(statements.NOTIFY, [CHANNEL, tag])

    def wait_for_settles_of_parents(self, children: Sequence[int]) -> None:
        with connections[self.alias].cursor() as cursor:
            cursor.execute(statements.LOCK_PARENTS_OF, [list(children)])

    @contextlib.contextmanager
    def exclusively(self, name: str) -> Iterator[bool]:  # type: ignore[override]
        """A transaction-level advisory lock: the body runs in that transaction, and the lock ends with it.

        Not a session lock: behind a transaction pooler its unlock would reach
        another server connection, and the lock would stay forever with the first.
        """
        with transaction.atomic(using=self.alias), connections[self.alias].cursor() as cursor:
            cursor.execute(statements.POSTGRES_TRY_XACT_LOCK, [advisory_key(name)])
            yield bool(cursor.fetchone()[0])

    def job_counts(self) -> list[tuple[str, str, str, int]]:
        """Live jobs counted on their partial indexes, finished ones from the kept counts (one snapshot)."""
        with connections[self.alias].cursor() as cursor:
            cursor.execute(statements.JOB_COUNTS)
            return [(task, tag, status, int(count)) for task, tag, status, count in cursor.fetchall() if count]

    def fold_counts(self) -> int:
        """Fold the count rows of closed connections into one row per task, tag and status."""
        with transaction.atomic(using=self.alias), connections[self.alias].cursor() as cursor:
            cursor.execute(statements.FOLD_COUNTS)
            folded = int(cursor.fetchone()[0])
            cursor.execute(statements.DROP_EMPTY_COUNTS)
        return folded

    def estimated_count(self, queryset: QuerySet[Any]) -> int | None:
        """The table's row estimate when unfiltered, the plan's when filtered (no row is read)."""
        with connections[queryset.db].cursor() as cursor:
            if not queryset.query.where:
                cursor.execute(statements.TABLE_ESTIMATE, [queryset.model._meta.db_table])
                row = cursor.fetchone()
                if row and row[0] >= 0:  # -1: never analyzed
                    return int(row[0])
            sql, params = queryset.order_by().values("pk").query.sql_with_params()
            cursor.execute(statements.EXPLAIN + sql, params)
            plan = cursor.fetchone()[0]
            if isinstance(plan, str):
                plan = json.loads(plan)
            return int(plan[0]["Plan"]["Plan Rows"])
