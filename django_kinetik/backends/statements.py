"""kinetik's own SQL, in one place, by name.

Everything else goes through the ORM. These statements are the hot path, where
one round trip per claim or per batch of settles matters, and what only one
database can say (NOTIFY, advisory locks, the planner's estimates). Only the
vendor backends beside this module use them.
"""

from __future__ import annotations

from ..models import Job, JobCount, JobDependency, JobRun, Worker

JOB = Job._meta.db_table
RUN = JobRun._meta.db_table
DEPENDENCY = JobDependency._meta.db_table
WORKER = Worker._meta.db_table
COUNT = JobCount._meta.db_table
_RESET_PROGRESS = "progress_current = NULL, progress_total = NULL, progress_data = NULL"

#: what a PostgreSQL claim returns per job (built into a Job by PostgresBackend._claimed_jobs)
_CLAIM_RETURNING = """RETURNING id, task, task_backend, tag, priority, data, options, attempts, ghosts, snoozes,
          unique_key, limit_key, extract(epoch FROM run_at)::float8, extract(epoch FROM created_at)::float8,
          extract(epoch FROM run_after)::float8"""

# ``id = ANY(ARRAY(subquery))`` rather than a join on the picked ids: a join
# makes the planner probe the ends of the primary-key index for its estimates,
# and in a busy queue those ends are full of dead row versions (planning took
# ~5 ms per claim mid-drain; this form plans in ~0.15 ms).
#
# Every tag the worker serves in one statement, in its order: the tags are the
# outer side of a nested loop over a LATERAL per-tag pick, and the outer LIMIT
# stops it, so a later tag is read (and its rows locked) only while the earlier
# ones have run out. Each pick reads the claim index in exactly its order.
_POSTGRES_CLAIM = f"""
UPDATE {JOB}
SET status = 'active', attempts = attempts + 1, started_at = %s, finished_at = NULL,
    worker_id = %s, lease_expires_at = %s, {_RESET_PROGRESS}
WHERE id = ANY(ARRAY(
    SELECT picked.id
    FROM unnest(%s::text[]) WITH ORDINALITY AS served(tag, position)
    CROSS JOIN LATERAL (
        SELECT id FROM {JOB}
        WHERE status = 'queued' AND tag = served.tag AND {{runnable}}
        ORDER BY priority DESC, run_at, id
        LIMIT %s
        FOR UPDATE SKIP LOCKED
    ) AS picked
    LIMIT %s
))
{_CLAIM_RETURNING}
"""

# The Redis fast path picked the ids; the database says which are still queued.
# The row lock makes a concurrent claim of the same id wait and then skip it.
_POSTGRES_CLAIM_IDS = f"""
UPDATE {JOB}
SET status = 'active', attempts = attempts + 1, started_at = %s, finished_at = NULL,
    worker_id = %s, lease_expires_at = %s, {_RESET_PROGRESS}
WHERE id = ANY(%b::bigint[]) AND status = 'queued' AND {{runnable}}
{_CLAIM_RETURNING}
"""

# Which jobs a worker may take (see backends.base.Runnable): its tasks by name,
# and, when it serves a django.tasks backend, every job such a backend enqueued
# except the module paths it could not import. The second array always holds
# at least '' (no task has that name), so "NOT IN" never meets an empty list.
_RUNNABLE_PG = "task = ANY(%s)"
_RUNNABLE_PG_WITH_DJANGO_TASKS = "(task = ANY(%s) OR (task_backend <> '' AND NOT task = ANY(%s)))"

#: the claim, by whether django.tasks jobs are runnable too
POSTGRES_CLAIM = {
    False: _POSTGRES_CLAIM.format(runnable=_RUNNABLE_PG),
    True: _POSTGRES_CLAIM.format(runnable=_RUNNABLE_PG_WITH_DJANGO_TASKS),
}
POSTGRES_CLAIM_IDS = {
    False: _POSTGRES_CLAIM_IDS.format(runnable=_RUNNABLE_PG),
    True: _POSTGRES_CLAIM_IDS.format(runnable=_RUNNABLE_PG_WITH_DJANGO_TASKS),
}


def sqlite_runnable(tasks: int, excluded: int | None) -> str:
    """The runnable condition for SQLite with this many task names (and, with django.tasks, exclusions)."""
    names = f"task IN ({', '.join(['%s'] * tasks)})"
    if excluded is None:
        return names
    return f"({names} OR (task_backend <> '' AND task NOT IN ({', '.join(['%s'] * excluded)})))"


SQLITE_CLAIM_IDS = f"""
UPDATE {JOB}
SET status = 'active', attempts = attempts + 1, started_at = %s, finished_at = NULL,
    worker_id = %s, lease_expires_at = %s, {_RESET_PROGRESS}
WHERE id IN ({{ids}}) AND status = 'queued' AND {{runnable}}
RETURNING {{returning}}
"""

SQLITE_CLAIM = f"""
UPDATE {JOB}
SET status = 'active', attempts = attempts + 1, started_at = %s, finished_at = NULL,
    worker_id = %s, lease_expires_at = %s, {_RESET_PROGRESS}
WHERE id IN (
    SELECT id FROM {JOB}
    WHERE status = 'queued' AND tag = %s AND {{runnable}}
    ORDER BY priority DESC, run_at, id
    LIMIT %s
)
RETURNING {{returning}}
"""

#: the fields of one attempt's end, in the order of each row of the settle's JSON array
SETTLE_FIELDS = (
    "id",
    "attempt",
    "worker_id",
    "status",
    "result",
    "error",
    "error_code",
    "exception",
    "traceback",
    "run_at",
    "finished_at",
    "outcome",
    "started_at",
)

# The attempts' ends travel as one JSON array of arrays, in SETTLE_FIELDS order:
# one parameter that Python encodes in C, where a binary array per column cost
# ~20 us a column in Python's dumpers (a quarter of a one-job round).
# A batch of attempt ends in one statement: each job row is updated only if it
# is still this attempt's (active, same worker, same attempt number), and a
# JobRun row is inserted for exactly the rows that were. Returns their ids, each
# with whether a job waits for it (create(after=...)): as the statement sees
# the arrows; one made meanwhile is for its creator to look at (dependencies.py).
#: what an attempt's end sets on its job row, from a row ``ended`` of the batch
# (a retry keeps the job's result and has no finish time yet).
_SETTLE_SET = """SET status = ended.status,
    result = CASE WHEN ended.status IN ('queued', 'delayed') THEN job.result ELSE ended.result END,
    error = ended.error, error_code = ended.error_code, run_at = COALESCE(ended.run_at, job.run_at),
    finished_at = CASE WHEN ended.status IN ('queued', 'delayed') THEN NULL ELSE ended.finished_at END,
    lease_expires_at = NULL"""

_SETTLE = f"""
WITH ended AS MATERIALIZED (
    SELECT (e->>0)::bigint AS id, (e->>1)::integer AS attempt, (e->>2)::bigint AS worker_id, e->>3 AS status,
           NULLIF(e->4, 'null'::jsonb) AS result, e->>5 AS error, e->>6 AS error_code, e->>7 AS exception,
           e->>8 AS traceback, (e->>9)::timestamptz AS run_at, (e->>10)::timestamptz AS finished_at, e->>11 AS outcome,
           (e->>12)::timestamptz AS started_at
    FROM jsonb_array_elements(%s::jsonb) AS e
),
settled AS (
    UPDATE {JOB} AS job
    {_SETTLE_SET}
    FROM ended
    -- Look the rows up by primary key. "status || ''" keeps the planner off the
    -- partial leases index (status = 'active'), which a busy queue fills with
    -- dead entries faster than autovacuum clears them: read through that index,
    -- a batch of 100 took 21 ms instead of 1.
    WHERE job.id = ANY(ARRAY(SELECT id FROM ended)) AND job.id = ended.id AND (job.status || '') = 'active'
      AND job.worker_id IS NOT DISTINCT FROM ended.worker_id AND job.attempts = ended.attempt
    RETURNING job.id, job.status
),
runs AS (
    INSERT INTO {RUN} (job_id, attempt, worker_id, outcome, started_at, finished_at, error, error_code, exception,
                       traceback)
    SELECT ended.id, ended.attempt, ended.worker_id, ended.outcome, ended.started_at, ended.finished_at,
           ended.error, ended.error_code, ended.exception, ended.traceback
    FROM ended JOIN settled ON settled.id = ended.id
    RETURNING job_id
)"""

_AWAITED = f"EXISTS (SELECT 1 FROM {DEPENDENCY} AS arrow WHERE arrow.parent_id = runs.job_id AND NOT arrow.done)"

SETTLE_MANY = f"""{_SETTLE}
SELECT job_id, {_AWAITED}
FROM runs
"""

# SETTLE_MANY that also sends the live feed's "finished" message (comma-separated
# ids of the jobs that reached an end, what wakes job.wait()) with NOTIFY: it is
# delivered when the settle commits, with no round trip of its own. In messages
# of at most 400 ids (NOTIFY payloads stop at 8,000 bytes).
SETTLE_MANY_ANNOUNCED = f"""{_SETTLE},
announced AS (
    SELECT count(pg_notify(%s, ids)) AS sent FROM (
        SELECT string_agg(id::text, ',') AS ids FROM (
            SELECT id, (row_number() OVER ()) / 400 AS chunk
            FROM settled WHERE status IN ('completed', 'failed', 'timeout')
        ) AS finished GROUP BY chunk
    ) AS chunks
)
SELECT job_id, {_AWAITED}
FROM runs CROSS JOIN announced
"""

#: create_many's shared values, in the order INSERT_JOBS takes them (then the data array)
INSERT_SHARED_COLUMNS = (
    "task",
    "task_backend",
    "tag",
    "priority",
    "status",
    "options",
    "run_at",
    "run_after",
    "created_at",
)

INSERT_JOBS = f"""
INSERT INTO {JOB} (task, task_backend, tag, priority, status, options, run_at, run_after, created_at, data, result,
                   error, error_code, attempts, ghosts, limit_key)
SELECT %s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s, data::jsonb, NULL, '', '', 0, 0, NULL
FROM unnest(%b::text[]) WITH ORDINALITY AS d(data, n)
ORDER BY n
RETURNING id
"""

#: INSERT_JOBS with a limit key per job (a task with limits), as a second array
INSERT_KEYED_JOBS = f"""
INSERT INTO {JOB} (task, task_backend, tag, priority, status, options, run_at, run_after, created_at, data, result,
                   error, error_code, attempts, ghosts, limit_key)
SELECT %s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s, data::jsonb, NULL, '', '', 0, 0, limit_key
FROM unnest(%b::text[], %b::text[]) WITH ORDINALITY AS d(data, limit_key, n)
ORDER BY n
RETURNING id
"""

# The ended attempts of one job with their workers' names (django.tasks results).
RUNS_OF = f"""
SELECT r.outcome, r.started_at, r.worker_id, w.name, r.error, r.exception, r.traceback
FROM {RUN} r LEFT JOIN {WORKER} w ON w.id = r.worker_id
WHERE r.job_id = %s ORDER BY r.id
"""

#: wake the workers LISTENing on the channel (delivered when the transaction commits)
NOTIFY = "SELECT pg_notify(%s, %s)"

# Wait until no parent of these children is being settled: the settle's row
# lock makes this wait for its commit (see dependencies.py).
LOCK_PARENTS_OF = f"""
SELECT 1 FROM {JOB} WHERE id IN (
    SELECT parent_id FROM {DEPENDENCY} WHERE child_id = ANY(%s) AND NOT done
) FOR SHARE
"""

#: per vendor: take a named lock without waiting, release it
POSTGRES_TRY_XACT_LOCK = "SELECT pg_try_advisory_xact_lock(%s)"
MYSQL_TRY_LOCK = "SELECT GET_LOCK(%s, 0)"
MYSQL_LOCK = "SELECT GET_LOCK(%s, 30)"
MYSQL_UNLOCK = "SELECT RELEASE_LOCK(%s)"

# -- the stats' counts on PostgreSQL (models/counts.py) --

# Jobs by task, tag and status in one statement, so one snapshot: a job settled
# meanwhile is counted once, as live or as finished. Live jobs are read through
# their partial indexes (one per live status), finished ones are the sums of
# the counts the triggers keep; a finished row is never read.
JOB_COUNTS = f"""
SELECT task, tag, status, count(*) FROM {JOB} WHERE status = 'queued' GROUP BY task, tag, status
UNION ALL SELECT task, tag, status, count(*) FROM {JOB} WHERE status = 'delayed' GROUP BY task, tag, status
UNION ALL SELECT task, tag, status, count(*) FROM {JOB} WHERE status = 'waiting' GROUP BY task, tag, status
UNION ALL SELECT task, tag, status, count(*) FROM {JOB} WHERE status = 'active' GROUP BY task, tag, status
UNION ALL SELECT task, tag, status, sum(count)::bigint FROM {COUNT} GROUP BY task, tag, status
"""

# The counts of connections that have closed, moved into the folded shard (0),
# and the folded rows that came to nothing dropped. Rows being written are
# skipped (SKIP LOCKED), and a live connection's never touched, so this never
# waits on a worker nor deadlocks with one. (pg_stat_activity shows every
# backend's pid to any role.)
FOLD_COUNTS = f"""
WITH gone AS (
    DELETE FROM {COUNT} WHERE id IN (
        SELECT id FROM {COUNT}
        WHERE shard <> 0 AND shard NOT IN (SELECT pid FROM pg_stat_activity WHERE pid IS NOT NULL)
        FOR UPDATE SKIP LOCKED
    )
    RETURNING task, tag, status, count
),
folded AS (
    INSERT INTO {COUNT} (shard, task, tag, status, count)
    SELECT 0, task, tag, status, sum(count) FROM gone GROUP BY task, tag, status ORDER BY task, tag, status
    ON CONFLICT (shard, task, tag, status) DO UPDATE SET count = {COUNT}.count + EXCLUDED.count
    RETURNING 1
)
SELECT count(*) FROM gone
"""
DROP_EMPTY_COUNTS = f"DELETE FROM {COUNT} WHERE shard = 0 AND count = 0"

#: the table's row estimate (-1: never analyzed)
TABLE_ESTIMATE = "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass"
EXPLAIN = "EXPLAIN (FORMAT JSON) "


def update_returning(columns: list[str], ids: int, statuses: int) -> str:
    """A guarded transition that returns the rows it changed (PostgreSQL, SQLite)."""
    sets = ", ".join(f'"{column}" = %s' for column in columns)
    return (
        f"UPDATE {JOB} SET {sets} WHERE id IN ({', '.join(['%s'] * ids)}) "
        f"AND status IN ({', '.join(['%s'] * statuses)}) RETURNING *"
    )


def sqlite_settle(rows: int) -> str:
    """SQLite's batch settle: every job row of the batch in one ``UPDATE ... FROM (VALUES ...)``.

    Each row is updated only if it is still this attempt's (active, same
    worker, same attempt number); the ids of those are returned, each with
    whether another job waits for it, and their JobRun rows inserted with
    :func:`sqlite_insert_runs`. The statement holds SQLite's write lock and
    reads the newest rows, so its look at the arrows is as good as one after
    the commit: an arrow committed later is the creator's to follow (see
    ``dependencies.py``). (RETURNING names the updated table by its name:
    SQLite does not resolve its alias there.)
    """
    values = ", ".join(["(%s, %s, %s, %s, %s, %s, %s, %s, %s)"] * rows)
    return f"""
WITH ended(id, attempt, worker_id, status, result, error, error_code, run_at, finished_at) AS (VALUES {values})
UPDATE {JOB} AS job
{_SETTLE_SET}
FROM ended
WHERE job.id = ended.id AND job.status = 'active' AND job.worker_id IS ended.worker_id
  AND job.attempts = ended.attempt
RETURNING id, EXISTS (SELECT 1 FROM {DEPENDENCY} AS arrow WHERE arrow.parent_id = {JOB}.id AND NOT arrow.done)
"""


#: the columns of a JobRun row, in the order :func:`sqlite_insert_runs` takes them
RUN_COLUMNS = (
    "job_id",
    "attempt",
    "worker_id",
    "outcome",
    "started_at",
    "finished_at",
    "error",
    "error_code",
    "exception",
    "traceback",
)


def sqlite_insert_runs(rows: int) -> str:
    values = ", ".join([f"({', '.join(['%s'] * len(RUN_COLUMNS))})"] * rows)
    return f"INSERT INTO {RUN} ({', '.join(RUN_COLUMNS)}) VALUES {values}"


#: what SQLite's claim returns per job (the rest of a claimed row is known)
SQLITE_CLAIMED_COLUMNS = (
    "id, task, task_backend, tag, priority, data, options, attempts, ghosts, snoozes, unique_key, limit_key, run_at, "
    "created_at, run_after"
)


# -- the live feed and the workers' wake-ups on PostgreSQL (feed/transport.py, worker/wakeup.py) --

#: a batch of messages in one statement; NOTIFYs from one transaction arrive in order
FEED_PUBLISH = "SELECT pg_notify(channel, payload) FROM unnest(%s::text[], %s::text[]) AS m(channel, payload)"
#: whether some connection follows the full feed: followers hold this shared advisory lock (two int4 keys)
FEED_HAS_AUDIENCE = (
    "SELECT EXISTS (SELECT FROM pg_locks WHERE locktype = 'advisory'"
    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    " AND classid = %s AND objid = %s AND objsubid = 2)"
)
FEED_JOIN_AUDIENCE = "SELECT pg_advisory_lock_shared(%s, %s)"
FEED_LEAVE_AUDIENCE = "SELECT pg_advisory_unlock_shared(%s, %s)"
#: a round trip that proves the database answers
PING = "SELECT 1"
#: whether the PostgreSQL server started after a moment (an outage under a job, outage.py)
POSTGRES_STARTED_AFTER = "SELECT pg_postmaster_start_time() > %s"


def listen(channel: str) -> str:
    """``LISTEN`` on one of kinetik's channels (constant names: quoted, never user input)."""
    return f'LISTEN "{channel}"'


def unlisten(channel: str) -> str:
    return f'UNLISTEN "{channel}"'
