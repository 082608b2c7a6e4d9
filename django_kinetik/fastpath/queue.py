"""Job ids in Redis: one sorted set per tag, pushed after commit, popped by workers.

Redis holds only *which* jobs to look at, never the jobs: a popped id is
claimed in the database (``UPDATE ... WHERE id = ANY(ids) AND status =
'queued'``), so an id that is stale, duplicated or popped twice costs a wasted
look-up, never a second run. An id lost from Redis (flush, restart, a worker
that died holding popped ids) leaves its job queued in the database, where
the workers' fallback claim and the reconciler find it.

A tag's queue is in the database claim's order: higher priority first, then
earlier ``run_at``, then smaller id. A score is ``(MAX_PRIORITY - priority) *
2**45`` plus ``run_at`` in 100 µs steps since 2020 (exact in a double until
2131); Redis orders equal scores by member, and members are ids padded to 19
digits, so that order is the ids' too. Ids an older version pushed unpadded
are still popped and claimed like the others, only out of place.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from ..backends import get_backend
from ..backends.base import Entry
from ..models import Job, Status
from ..values.priorities import MAX_PRIORITY
from .connection import enabled, key, queue_key, redis_client, redis_errors, script

logger = logging.getLogger("django_kinetik.fastpath")

SCRIPTS = Path(__file__).with_name("scripts")
_TIME_SPAN = 2**45
_EPOCH = datetime(2020, 1, 1, tzinfo=UTC)
_STEP = timedelta(microseconds=100)
_ID_DIGITS = 19  # 2**63 - 1, the largest job id, has 19


def score(priority: int, run_at: datetime | None) -> int:
    """Higher priority first, then earlier ``run_at``; None puts a job first in its priority.

    Times before 2020 count as 2020 (such a job is at the front anyway).
    """
    if run_at is None:
        return (MAX_PRIORITY - priority) * _TIME_SPAN
    if run_at.tzinfo is None:  # USE_TZ = False: every time is naive alike, and only their order counts
        run_at = run_at.replace(tzinfo=UTC)
    steps = min(max((run_at - _EPOCH) // _STEP, 0), _TIME_SPAN - 1)
    return (MAX_PRIORITY - priority) * _TIME_SPAN + steps


def member(job_id: int) -> str:
    """A job id as its queue holds it: padded, so that Redis's order of equal scores is the ids' order."""
    return f"{job_id:0{_ID_DIGITS}d}"


def marker_key() -> str:
    """Exists while Redis holds what the reconciler pushed; gone after a flush or restart."""
    return key("alive")


@cache
def _script_source(name: str) -> str:
    return (SCRIPTS / f"{name}.lua").read_text()


def _script(name: str) -> Any:
    return script(name, _script_source(name))


#: ids per script call: a huge create_many is pushed in slices, so Redis never
#: blocks other clients for long
PUSH_SLICE = 5_000


def push(entries: Iterable[Entry], *, first: bool = False) -> bool:
    """Queue ids in Redis, any number of tags in one round trip per slice (``first``: ahead of their priority).

    Returns False if Redis lost its state (flushed, restarted) and wants a reconcile.
    """
    entries = list(entries)
    intact = True
    for start in range(0, len(entries), PUSH_SLICE):
        by_tag: dict[str, list[Any]] = defaultdict(list)
        for job_id, tag, priority, run_at in entries[start : start + PUSH_SLICE]:
            by_tag[tag] += [score(priority, None if first else run_at), member(job_id)]
        keys = [marker_key()]
        args: list[Any] = []
        for tag, pairs in by_tag.items():
            keys.append(queue_key(tag))
            args += [len(pairs) // 2, *pairs]
        intact = bool(_script("push")(keys=keys, args=args)) and intact
    return intact


def pop(tags: Sequence[str], count: int) -> list[int]:
    """Take up to ``count`` ids from the tags' queues, first tag first (never blocks)."""
    if count <= 0 or not tags:
        return []
    popped = _script("pop")(keys=[queue_key(tag) for tag in tags], args=[count])
    return [int(job_id) for job_id in popped]


def wait_pop(tags: Sequence[str], timeout: float, *, interrupt: str | None = None) -> tuple[bytes, int, float] | None:
    """Block up to ``timeout`` seconds for one id from the tags' queues (first tag first).

    Returns (key, id, score), so :func:`unpop` can put it back where it was.
    ``interrupt``: a key of the caller's own that :func:`interrupt_wait` writes
    to end the wait early (None is returned then).
    """
    keys = [queue_key(tag) for tag in tags] + ([interrupt] if interrupt else [])
    answer = redis_client().bzpopmin(keys, timeout=timeout)
    if answer is None or (interrupt and answer[0].decode() == interrupt):
        return None
    return (answer[0], int(answer[1]), answer[2])


def interrupt_wait(interrupt: str) -> None:
    """End a :func:`wait_pop` blocked on ``interrupt`` now (the key expires by itself if nobody waits)."""
    client = redis_client()
    client.zadd(interrupt, {"stop": 0})
    client.expire(interrupt, 5)


def unpop(popped: tuple[bytes, int, float]) -> None:
    """Put an id taken by :func:`wait_pop` back at its place."""
    queue, job_id, rank = popped
    redis_client().zadd(queue, {member(job_id): rank}, nx=True)


def wanted(job: Job) -> bool:
    """Which jobs go to Redis: queued ones without a limit key.

    The one place this is decided. A job of a task with concurrency or rate
    limits (a limit key) is only ever taken by the limited claim, from the
    database (``backends/limited.py``); a delayed or waiting job goes when it is queued.
    """
    return job.status == Status.QUEUED and job.limit_key is None


def push_jobs(jobs: Iterable[Job], *, first: bool = False) -> None:
    """Push the :func:`wanted` ones of ``jobs`` (committed), if the fast path is on (``first``: see :func:`push`).

    A failed push is logged, not raised: the jobs are safe in the database and
    the workers' fallback claim finds them.
    """
    if not enabled():
        return
    entries = [(job.id, job.tag, job.priority, job.run_at) for job in jobs if wanted(job)]
    if entries:
        push_quietly(entries, first=first)


def push_quietly(entries: Sequence[Entry], *, first: bool = False) -> None:
    try:
        push(entries, first=first)
    except redis_errors() as error:
        logger.warning(
            "Could not push %d job id(s) to Redis (%s); workers will find them in the database.", len(entries), error
        )


def entries_of(using: str, ids: Sequence[int]) -> list[Entry]:
    """The entries of those of ``ids`` that are still :func:`wanted` (others must not be pushed)."""
    return [(job.id, job.tag, job.priority, job.run_at) for job in get_backend(using).jobs_in(ids) if wanted(job)]


def reconcile(using: str, tags: Sequence[str], *, limit: int = 10_000, lock_for: float = 30.0) -> int | None:
    """Push the tags' queued jobs back into Redis; the number pushed, or None if another worker is at it.

    One worker at a time (a Redis lock per tag set, released when done), at
    most ``limit`` jobs per tag per run: the oldest, which are the next to run
    anyway. Marks Redis as holding our state again.
    """
    client = redis_client()
    lock = key("reconciling", ",".join(sorted(tags)))
    if not client.set(lock, "1", nx=True, px=int(lock_for * 1000)):
        return None
    try:
        pushed = 0
        for tag in tags:
            entries = get_backend(using).queued_unlimited(tag, limit)
            if entries:
                push(entries)
                pushed += len(entries)
        client.set(marker_key(), "1")
        return pushed
    finally:
        client.delete(lock)


def lost_state() -> bool:
    """Whether Redis was flushed or restarted since the last reconcile."""
    return not redis_client().exists(marker_key())
