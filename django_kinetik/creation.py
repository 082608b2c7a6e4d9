"""Creating jobs: ``kinetik.create()`` and ``kinetik.create_many()``.

Everything is checked before anything is written: the task, the data (a JSON
object), the delay, priority, tag, options, unique and limit keys, the jobs
it runs after. Jobs are rows written with the caller's connection, so a job
created inside ``transaction.atomic()`` exists only if that transaction
commits, and the lifecycle announces it (Redis, the feed, ``job_created``)
only then.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from . import dependencies, eager, lifecycle
from .backends import get_backend
from .conf import get_settings
from .exceptions import UnknownTask
from .models import Job, Status
from .registry import Task, registry
from .values.durations import DelayLike, aware, run_at_for
from .values.jsondata import ensure_json_object
from .values.keys import parse_unique_key, unique_key_for
from .values.limits import Limit, parse_limit_key
from .values.options import RUN_OPTION_NAMES, parse_options, parse_tag
from .values.priorities import PriorityLike, parse_priority
from .values.text import check_task_name

TaskRef = Task | str
JobRef = Job | int

#: called with every batch of jobs just created, before eager mode runs them
#: (how :mod:`django_kinetik.testing` captures jobs)
created_hooks: list[Callable[[list[Job]], None]] = []


#: the earliest run_after kept as given: MySQL's DATETIME starts at the year 1000
EARLIEST_YEAR = 1000


def _resolve_task(task: TaskRef, tag: str | None) -> tuple[str, Task | None]:
    if isinstance(task, Task):
        return task.name, task
    if not isinstance(task, str):
        raise TypeError(f"task must be a Task or a task name, not {type(task).__name__}")
    if task in registry:
        return task, registry.get(task)
    # A job of a task another service defines: its name must be one a task could have.
    check_task_name(task)
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
    run_after = None
    if task_backend and isinstance(delay, datetime):
        # django.tasks' run_after is kept as given, and a past one is the job's place in
        # line too: the claim runs equal priorities earliest run_after first. kinetik's
        # own past delay means "now", as it always has.
        run_after = run_at = aware(delay)
        if run_after.year < EARLIEST_YEAR:
            raise ValueError(
                f"run_after {delay.isoformat()} is before the year {EARLIEST_YEAR}, the earliest MySQL can store "
                "(and so the earliest kinetik takes on any database); a past run_after runs as soon as it can, "
                "so any later past time does the same"
            )
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
        "run_after": run_after,
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
    max_bytes = get_settings().max_data_bytes
    payload = ensure_json_object(data, max_bytes=max_bytes)
    fields = _prepare(task, delay=delay, priority=priority, tag=tag, options=options, task_backend=task_backend)
    definition = fields.pop("definition")
    unique = fields.pop("unique")
    limit = fields.pop("limit")
    policy = fields.pop("policy")
    if unique_key is not None:
        unique_key = parse_unique_key(unique_key)
    else:
        unique_key = unique_key_for(fields["task"], unique, payload)
    if limit_key is not None:
        limit_key = parse_limit_key(limit_key)
    elif limit:
        limit_key = limit.key_for(fields["task"], payload)
    parents = dependencies.parent_ids(after) if after is not None else []
    using = get_settings().database
    backend = get_backend(using)
    with transaction.atomic(using=using) if parents else contextlib.nullcontext():
        done = _runs_after(using, fields, parents, policy) if parents else None
        if unique_key is None:
            keys = None if limit_key is None else [limit_key]
            (job,) = backend.insert_jobs(fields, [payload], limit_keys=keys, batch_size=1)
        else:
            job = Job(data=payload, unique_key=unique_key, limit_key=limit_key, **fields)
            existing = backend.insert_unique(job)
            if existing is not None:
                return existing
        if done is not None:
            dependencies.link(using, [job], done)
    lifecycle.created([job], using, definition)
    _created([job])
    return job


def create_on_commit(
    task: TaskRef, data: Mapping[str, Any] | None = None, *, using: str | None = None, **kwargs: Any
) -> None:
    """Create the job when the transaction on database ``using`` commits; none if it rolls back.

    For jobs on a database of their own (``KINETIK["DATABASE"]`` is not the
    alias of your transaction): there, :func:`create` inside ``atomic()`` on
    ``default`` is not part of that transaction, so the job would exist even if
    it rolled back, and a worker could start it before the data it needs is
    committed. Takes :func:`create`'s arguments and checks them now, so bad
    input raises here and nothing is scheduled. Outside a transaction the job
    is created at once. If the jobs' database refuses it at commit, the error is
    raised from the commit (Django's ``on_commit``), after ``using``'s data is
    committed: two databases cannot commit as one.
    """
    ensure_json_object(data, max_bytes=get_settings().max_data_bytes)
    options = {k: v for k, v in kwargs.items() if k not in _CREATE_KEYWORDS}
    _prepare(
        task,
        delay=kwargs.get("delay"),
        priority=kwargs.get("priority"),
        tag=kwargs.get("tag"),
        options=options,
    )
    if kwargs.get("unique_key") is not None:
        parse_unique_key(kwargs["unique_key"])
    if kwargs.get("limit_key") is not None:
        parse_limit_key(kwargs["limit_key"])
    if kwargs.get("after") is not None:
        kwargs["after"] = dependencies.parent_ids(kwargs["after"])
    transaction.on_commit(lambda: create(task, data, **kwargs), using=using)


#: create()'s own keywords; the rest are per-job task options
_CREATE_KEYWORDS = ("delay", "priority", "tag", "unique_key", "limit_key", "after", "task_backend")


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


def _created(jobs: list[Job]) -> None:
    for hook in list(created_hooks):
        hook(jobs)
    if eager.enabled():
        for job in jobs:
            eager.run(job)


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
    max_bytes = get_settings().max_data_bytes
    payloads = []
    for index, item in enumerate(items):
        try:
            payloads.append(ensure_json_object(item, what=f"data (item {index})", max_bytes=max_bytes))
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
    using = get_settings().database
    with transaction.atomic(using=using) if parents else contextlib.nullcontext():
        done = _runs_after(using, fields, parents, policy) if parents else None
        jobs = get_backend(using).insert_jobs(fields, payloads, limit_keys=keys, batch_size=batch_size)
        if done is not None:
            dependencies.link(using, jobs, done)
    lifecycle.created(jobs, using, definition)
    _created(jobs)
    return jobs
