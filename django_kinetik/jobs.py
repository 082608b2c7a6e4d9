"""Creating and managing jobs: the functions ``import django_kinetik as kinetik`` exposes.

Jobs are rows in the configured database, written with the caller's
connection: a job created inside ``transaction.atomic()`` exists only if that
transaction commits, and ``job_created`` is sent only then.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, connections, transaction
from django.db.models import Count, QuerySet
from django.utils import timezone

from . import dependencies
from .backends import postgres_inserts
from .conf import get_settings
from .exceptions import InvalidTransition, JobNotFound, UnknownTask
from .fastpath import queue as fastpath_queue
from .feed import publishing
from .models import (
    FINISHED_STATUSES,
    LIVE_STATUSES,
    RETRYABLE_STATUSES,
    Job,
    JobDependency,
    JobLog,
    JobRun,
    Status,
    TagState,
)
from .registry import Task, registry
from .signals import emit, job_cancelled, job_created
from .values.durations import DelayLike, parse_duration, run_at_for
from .values.jsondata import ensure_json_object
from .values.keys import unique_key_for
from .values.limits import Limit, parse_limit_key
from .values.options import RUN_OPTION_NAMES, parse_options, parse_tag
from .values.priorities import PriorityLike, parse_priority
from .worker import eager

TaskRef = Task | str
JobRef = Job | int


def _using() -> str:
    return get_settings().database


def _resolve_task(task: TaskRef, tag: str | None) -> tuple[str, Task | None]:
    if isinstance(task, Task):
        return task.name, task
    if not isinstance(task, str):
        raise TypeError(f"task must be a Task or a task name, not {type(task).__name__}")
    if task in registry:
        return task, registry.get(task)
    if tag is None:
        raise UnknownTask(task)
    return task, None


def _prepare(
    task: TaskRef,
    *,
    delay: DelayLike,
    priority: PriorityLike | None,
    tag: str | None,
    options: Mapping[str, Any],
    task_backend: str = "",
) -> dict[str, Any]:
    """Validate everything about the jobs to create before anything is written."""
    name, definition = _resolve_task(task, tag)
    where = f"create({name!r})"
    run_options = parse_options(options, where=where)
    unknown = set(run_options) - set(RUN_OPTION_NAMES)
    if unknown:
        raise TypeError(
            f"{where}: {', '.join(sorted(unknown))} cannot be set for one job; "
            f"set it on the task or in KINETIK['TASKS']"
        )
    defaults = definition.effective_options() if definition else None
    now = timezone.now()
    run_at = run_at_for(delay, now)
    return {
        "task": name,
        "task_backend": task_backend,
        "definition": definition,
        "unique": defaults.unique if defaults else False,
        # A limited task's jobs get a limit key and are claimed from the database
        # only (backends/limited.py), never pushed to Redis.
        "limit": defaults.limit if defaults else Limit(),
        "policy": run_options.get("on_parent_failure") or (defaults.on_parent_failure if defaults else "cancel"),
        "tag": parse_tag(tag) if tag is not None else defaults.tag,  # type: ignore[union-attr]
        "priority": parse_priority(priority) if priority is not None else (defaults.priority if defaults else 0),
        "status": Status.DELAYED if run_at > now else Status.QUEUED,
        "run_at": run_at,
        "created_at": now,
        # Stored as given (validated), resolved against the task when the job runs.
        "options": {key: _storable(value) for key, value in options.items()},
    }


def _storable(value: Any) -> Any:
    if isinstance(value, timedelta):
        return int(value.total_seconds() * 1000)
    return value


def create(
    task: TaskRef,
    data: Mapping[str, Any] | None = None,
    *,
    delay: DelayLike = None,
    priority: PriorityLike | None = None,
    tag: str | None = None,
    unique_key: str | None = None,
    limit_key: str | None = None,
    after: Iterable[JobRef] | None = None,
    task_backend: str = "",
    **options: Any,
) -> Job:
    """Create one job and return it.

    ``task`` is a :class:`Task` or a task name. ``data`` must be a JSON object.
    ``delay`` is milliseconds (int), ``"30s"``-style text, a ``timedelta`` or a
    ``datetime`` to run at. ``priority`` is an integer or a level name
    (``"high"``). With ``unique_key``, a queued, delayed or running job with the
    same key is returned instead of a new one; a task defined with ``unique=``
    computes that key from its name and ``data`` (an explicit ``unique_key``
    wins). ``limit_key`` is what the task's concurrency and rate limits count
    the job under (by default computed with the task's ``limit_by``). With
    ``after`` (jobs or job ids) the job waits until they have all completed,
    and is cancelled if one of them fails, times out or is cancelled (or runs
    anyway, with ``on_parent_failure="run"``). Other keyword arguments override
    the task's ``timeout``, ``retries``, ``retry_delay`` and ``backoff`` for this
    job. Nothing is written if any argument is invalid. ``task_backend`` is set
    by the ``django.tasks`` backend (the alias that enqueued the job).

    With ``KINETIK["EAGER"]`` the job runs here before this returns.
    """
    payload = ensure_json_object(data)
    fields = _prepare(task, delay=delay, priority=priority, tag=tag, options=options, task_backend=task_backend)
    definition = fields.pop("definition")
    unique = fields.pop("unique")
    limit = fields.pop("limit")
    policy = fields.pop("policy")
    if unique_key is not None and not isinstance(unique_key, str):
        raise TypeError(f"unique_key must be a string, not {type(unique_key).__name__}")
    if unique_key is None:
        unique_key = unique_key_for(fields["task"], unique, payload)
    if limit_key is not None:
        limit_key = parse_limit_key(limit_key)
    elif limit:
        limit_key = limit.key_for(fields["task"], payload)
    parents = dependencies.parent_ids(after) if after is not None else []
    using = _using()
    with transaction.atomic(using=using) if parents else contextlib.nullcontext():
        done = _runs_after(using, fields, parents, policy) if parents else None
        job, existing = _insert_one(using, fields, payload, unique_key, limit_key)
        if existing:
            return job
        if done is not None:
            dependencies.link(using, [job], done)
            dependencies.created(using, [job])
    if job.status == Status.QUEUED and not limit:
        fastpath_queue.announce([(job.pk, job.tag, job.priority)], using)
    publishing.created([job], using)
    if job_created.has_listeners(Job):
        transaction.on_commit(lambda: emit(job_created, Job, job=job, task=definition), using=using)
    _created([job])
    return job


def _insert_one(
    using: str, fields: dict[str, Any], payload: dict[str, Any], unique_key: str | None, limit_key: str | None
) -> tuple[Job, bool]:
    """Insert one job; (the job, False), or (the live job holding ``unique_key``, True)."""
    if unique_key is None and "error" not in fields and connections[using].vendor == "postgresql":
        # One prepared statement, like create_many (Django's save() costs ~0.4 ms here).
        keys = None if limit_key is None else [limit_key]
        (job,) = postgres_inserts.insert_jobs(using, fields, [payload], batch_size=1, limit_keys=keys)
        return job, False
    job = Job(data=payload, unique_key=unique_key, limit_key=limit_key, **fields)
    if unique_key is None:
        job.save(using=using, force_insert=True)
        return job, False
    existing = _save_unique(job, using)
    return (existing, True) if existing is not None else (job, False)


def _runs_after(using: str, fields: dict[str, Any], parents: list[int], policy: str) -> dict[int, bool]:
    """Set up jobs that run after ``parents``: waiting, or cancelled at once if one already failed.

    Returns which parents already let them go on (inside the creating transaction).
    """
    status, done, why = dependencies.start_state(using, parents, policy)
    if status == Status.CANCELLED:
        fields.update(status=status, error=why, error_code=dependencies.PARENT_FAILED, finished_at=timezone.now())
    elif status is not None:
        fields["status"] = status
    if policy != "cancel":
        # Kept with the job: whoever moves it on may not have its task's definition.
        fields["options"] = {**fields["options"], dependencies.POLICY: policy}
    return done


#: called with every batch of jobs just created, before eager mode runs them
#: (how :mod:`django_kinetik.testing` captures jobs)
created_hooks: list[Callable[[list[Job]], None]] = []


def _created(jobs: list[Job]) -> None:
    for hook in list(created_hooks):
        hook(jobs)
    if eager.enabled():
        for job in jobs:
            eager.run(job)


def _save_unique(job: Job, using: str) -> Job | None:
    """Insert ``job`` unless a live job holds its key; return that job instead."""
    if not connections[using].features.supports_partial_indexes:
        return _save_unique_with_named_lock(job, using)
    for _ in range(5):
        try:
            with transaction.atomic(using=using):
                job.save(using=using, force_insert=True)
            return None
        except IntegrityError:
            job.pk = None
            existing = Job.objects.using(using).filter(unique_key=job.unique_key, status__in=LIVE_STATUSES).first()
            if existing is not None:
                return existing
            # The holder finished between our insert and our look: try again.
    raise IntegrityError(f"Could not create a job with unique_key={job.unique_key!r}")


def _save_unique_with_named_lock(job: Job, using: str) -> Job | None:
    """MySQL/MariaDB ignore the partial unique constraint: serialise on a named lock.

    The lock covers the look and the insert; inside a caller's longer
    transaction, another process may not yet see the new job when the lock is
    released, so there uniqueness holds among committed jobs.
    """
    name = f"kinetik:{job.unique_key}"[:64]
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT GET_LOCK(%s, 30)", [name])
        try:
            existing = Job.objects.using(using).filter(unique_key=job.unique_key, status__in=LIVE_STATUSES).first()
            if existing is not None:
                return existing
            job.save(using=using, force_insert=True)
            return None
        finally:
            cursor.execute("SELECT RELEASE_LOCK(%s)", [name])


def create_many(
    task: TaskRef,
    items: Iterable[Mapping[str, Any] | None],
    *,
    delay: DelayLike = None,
    priority: PriorityLike | None = None,
    tag: str | None = None,
    after: Iterable[JobRef] | None = None,
    batch_size: int = 1000,
    **options: Any,
) -> list[Job]:
    """Create one job per item of ``items`` in bulk inserts; all-or-nothing.

    Every item is checked before anything is written; the jobs share ``delay``,
    ``priority``, ``tag``, ``after`` and options. A task defined with ``unique=`` is
    refused (``TypeError``): use :func:`create` for each of its jobs.
    """
    payloads = []
    for index, item in enumerate(items):
        try:
            payloads.append(ensure_json_object(item, what=f"data (item {index})"))
        except (TypeError, ValueError) as error:
            raise type(error)(f"create_many: {error}") from None
    fields = _prepare(task, delay=delay, priority=priority, tag=tag, options=options)
    definition = fields.pop("definition")
    limit = fields.pop("limit")
    policy = fields.pop("policy")
    if fields.pop("unique") is not False:
        # A bulk insert cannot hand back the live job a duplicate would have been.
        raise TypeError(
            f"create_many: task {fields['task']!r} is unique; create its jobs one at a time with create(), "
            f"which returns the live job for a duplicate"
        )
    parents = dependencies.parent_ids(after) if after is not None else []
    if not payloads:
        return []
    keys = [limit.key_for(fields["task"], payload) for payload in payloads] if limit else None
    using = _using()
    fast = connections[using].vendor == "postgresql"
    # PostgreSQL's insert is all-or-nothing by itself (see postgres_inserts).
    with transaction.atomic(using=using) if parents or not fast else contextlib.nullcontext():
        done = _runs_after(using, fields, parents, policy) if parents else None
        if fast and "error" not in fields:
            jobs = postgres_inserts.insert_jobs(
                using, fields, payloads, batch_size=max(batch_size, 5000), limit_keys=keys
            )
        else:
            jobs = Job.objects.using(using).bulk_create(
                [
                    Job(data=payload, limit_key=keys[index] if keys else None, **fields)
                    for index, payload in enumerate(payloads)
                ],
                batch_size=batch_size,
            )
        if done is not None:
            dependencies.link(using, jobs, done)
            dependencies.created(using, jobs)
    if fields["status"] == Status.QUEUED and not limit:
        fastpath_queue.announce([(job.pk, job.tag, job.priority) for job in jobs], using)
    publishing.created(jobs, using)

    if job_created.has_listeners(Job):

        def announce() -> None:
            for job in jobs:
                emit(job_created, Job, job=job, task=definition)

        transaction.on_commit(announce, using=using)
    _created(jobs)
    return jobs


def get_job(job: JobRef) -> Job:
    """The job row for a job or a job id."""
    if isinstance(job, Job):
        return job
    try:
        return Job.objects.using(_using()).get(pk=job)
    except (Job.DoesNotExist, ValueError, TypeError):
        raise JobNotFound(f"There is no job with id {job!r}.") from None


def cancel(job: JobRef) -> Job:
    """Cancel a queued, delayed or running job; raise if it had already finished.

    A running job is marked cancelled at once; its code is not interrupted and
    whatever it returns is discarded.
    """
    row = get_job(job)
    if not row.cancel():
        raise InvalidTransition(row, "cancel", LIVE_STATUSES)
    emit(job_cancelled, Job, job=row, task=registry.find(row.task))
    return row


def retry(job: JobRef) -> Job:
    """Queue a failed, timed-out or cancelled job again, with a fresh set of attempts."""
    row = get_job(job)
    if not row.retry():
        raise InvalidTransition(row, "retry", RETRYABLE_STATUSES)
    if row.limit_key is None:  # a limited job is for the limited claim, never in Redis
        fastpath_queue.announce([(row.pk, row.tag, row.priority)], row._state.db or _using())
    return row


def fetch(**filters: Any) -> QuerySet[Job]:
    """Jobs matching Django lookups, newest first: ``fetch(status="failed", tag="mail")``."""
    return Job.objects.using(_using()).filter(**filters)


def clean(
    tags: str | Sequence[str] | None = None,
    status: str | Sequence[str] | None = "completed",
    older_than: Any = None,
    *,
    batch_size: int = 1000,
) -> int:
    """Delete finished jobs (with their logs and runs) in batches; return how many.

    ``status`` is one status or several (``None`` means every finished status);
    live jobs are never deleted. ``older_than`` is a duration (``"7d"``) or a
    datetime, compared with when the job finished. Each batch is its own short
    transaction, so cleaning a million rows never holds one giant lock.
    """
    statuses = _finished_statuses(status)
    queryset = Job.objects.using(_using()).filter(status__in=statuses)
    if tags is not None:
        queryset = queryset.filter(tag__in=[tags] if isinstance(tags, str) else list(tags))
    if older_than is not None:
        cutoff = (
            older_than
            if isinstance(older_than, datetime)
            else (timezone.now() - timedelta(seconds=parse_duration(older_than, what="older_than")))
        )
        queryset = queryset.filter(finished_at__lt=cutoff)
    deleted = 0
    for ids in batches_of_ids(queryset, batch_size):
        deleted += delete_jobs(ids)
    return deleted


def _finished_statuses(status: str | Sequence[str] | None) -> list[str]:
    if status is None:
        return list(FINISHED_STATUSES)
    statuses = [status] if isinstance(status, str) else list(status)
    for value in statuses:
        if value not in FINISHED_STATUSES:
            raise ValueError(
                f"clean() only deletes finished jobs; status {value!r} is not one of {', '.join(FINISHED_STATUSES)}"
            )
    return statuses


def batches_of_ids(queryset: QuerySet[Job], size: int) -> Iterable[list[int]]:
    """Ids of ``queryset`` in ascending batches, each read fresh (keyset pagination)."""
    last = 0
    while True:
        ids = list(queryset.filter(pk__gt=last).order_by("pk").values_list("pk", flat=True)[:size])
        if not ids:
            return
        yield ids
        last = ids[-1]


def delete_jobs(ids: list[int]) -> int:
    """Delete these jobs and their logs and runs in one short transaction.

    Jobs waiting for a deleted job that had not completed are cancelled first
    (or run anyway, with ``on_parent_failure="run"``).
    """
    using = _using()
    dependencies.parents_deleted(using, ids)
    with transaction.atomic(using=using):
        JobDependency.objects.using(using).filter(child_id__in=ids)._raw_delete(using)
        JobDependency.objects.using(using).filter(parent_id__in=ids)._raw_delete(using)
        JobLog.objects.using(using).filter(job_id__in=ids)._raw_delete(using)
        JobRun.objects.using(using).filter(job_id__in=ids)._raw_delete(using)
        return Job.objects.using(using).filter(pk__in=ids)._raw_delete(using)


def stats() -> dict[str, Any]:
    """Counts of jobs by status, by task and by tag.

    ``{"status": {"queued": 3, ...}, "tasks": {"send email": {"queued": 3}},
    "tags": {"mail": {"queued": 3}}, "total": 3}``; every status appears in
    ``status``, with 0 where there are none.
    """
    by_status: dict[str, int] = {value: 0 for value in Status.values}
    by_task: dict[str, dict[str, int]] = {}
    by_tag: dict[str, dict[str, int]] = {}
    rows = Job.objects.using(_using()).order_by().values_list("task", "tag", "status").annotate(count=Count("id"))
    for task, tag, status, count in rows:
        by_status[status] = by_status.get(status, 0) + count
        by_task.setdefault(task, {})
        by_task[task][status] = by_task[task].get(status, 0) + count
        by_tag.setdefault(tag, {})
        by_tag[tag][status] = by_tag[tag].get(status, 0) + count
    return {"status": by_status, "tasks": by_task, "tags": by_tag, "total": sum(by_status.values())}


def tags() -> list[str]:
    """Tags this process knows: those of registered tasks, then any paused ones."""
    paused = TagState.objects.using(_using()).values_list("tag", flat=True)
    return list(dict.fromkeys([*registry.tags(), *paused]))


def pause(tag: str) -> None:
    """Stop every worker claiming jobs of ``tag`` (within one interval); running jobs finish."""
    _set_paused(tag, True)


def resume(tag: str) -> None:
    """Let workers claim jobs of ``tag`` again."""
    _set_paused(tag, False)


def _set_paused(tag: str, paused: bool) -> None:
    # Write first, never read-then-write in one transaction: on SQLite that
    # fails with "database is locked" while a worker is writing.
    tag = parse_tag(tag)
    states = TagState.objects.using(_using())
    changes = {"paused": paused, "changed_at": timezone.now()}
    if states.filter(tag=tag).update(**changes):
        return
    try:
        with transaction.atomic(using=_using()):
            states.create(tag=tag, **changes)
    except IntegrityError:
        states.filter(tag=tag).update(**changes)


def is_paused(tag: str) -> bool:
    return TagState.objects.using(_using()).filter(tag=tag, paused=True).exists()
