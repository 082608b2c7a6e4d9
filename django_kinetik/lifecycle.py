"""The one owner of "a job changed state".

Every change of a job's status goes through here, whoever makes it: the
public functions and the model methods, bulk actions (admin, API, CLI), the
worker's settle, timeouts, lease recovery and shutdown, eager mode. The write
itself is the storage backend's (a guarded ``UPDATE`` that returns what it
changed); what follows from it is written once, below:

==============  ===========================================================
created         Redis push (queued ones), ``created`` event, ``job_created``,
                the creator's look at the jobs it runs after
queued          Redis push, workers woken; after a retry by hand, the jobs
                its failure cancelled wait again
started         ``started`` event, ``job_started``
retrying        ``retrying`` event, ``job_retrying``, Redis push if due now
ended           ``completed``/``failed``/``timeout``/``cancelled`` event (which
                wakes ``job.wait()``), the signal of that name, the jobs
                waiting for it moved on, removal of a ``remove_on_complete`` job
==============  ===========================================================

What leaves the database (Redis, the feed, NOTIFY) happens only once the change
has committed, and so do ``job_created`` and the ``after_transition`` hooks.
The other signals are sent, and dependants moved on, in the caller's
transaction, as Django sends its model signals; a settle sends its signals
inside the transaction of its write (see :func:`settle`).

The hooks: middleware's ``before_transition`` / ``after_transition`` and the
hooks installed with :func:`install` (the django.tasks bridge is one), each
given a :class:`Transition`. A hook that raises is logged; it never changes an
outcome. Which jobs go to Redis is the fast path's rule
(:func:`~.fastpath.queue.wanted`); nothing here decides it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from django.db import transaction

from . import dependencies
from .backends import Backend, Settlement, get_backend
from .backends.base import DATABASE_ERRORS, ride_out
from .fastpath import queue as fastpath
from .feed import publishing
from .middleware import installed
from .models import Job, Status
from .registry import Task, registry
from .removals import removals
from .signals import emit, job_cancelled, job_completed, job_created, job_failed, job_retrying, job_started, job_timeout
from .transitions import Cause, Ended, Transition

logger = logging.getLogger("django_kinetik.jobs")

#: the signals an attempt's end may send
_END_SIGNALS = (job_completed, job_retrying, job_timeout, job_failed)


# -- hooks -------------------------------------------------------------------

Hook = Callable[[Transition], None]
#: kinetik's own hooks, each with the jobs it wants to hear about (None: every job)
_installed: list[tuple[Hook, Callable[[Job], bool] | None]] = []


def install(hook: Hook, *, wants: Callable[[Job], bool] | None = None) -> None:
    """Call ``hook`` after every transition of the jobs ``wants`` (every job, by default).

    For kinetik's own parts (the django.tasks bridge wants only django.tasks
    jobs); a project's code uses middleware hooks instead.
    """
    if all(existing != hook for existing, _ in _installed):
        _installed.append((hook, wants))


def _interested(jobs: Sequence[Job]) -> list[Hook]:
    return [hook for hook, wants in _installed if wants is None or any(wants(job) for job in jobs)]


def _call(hooks: Iterable[Hook], transition: Transition) -> None:
    for hook in hooks:
        try:
            hook(transition)
        except Exception:
            logger.exception(
                "Transition hook %s raised on %s of job(s) %s; the jobs are not affected.",
                getattr(hook, "__qualname__", repr(hook)),
                transition.cause,
                [job.id for job in transition.jobs[:10]],
            )


def before(cause: Cause, jobs: Sequence[Job], using: str, **details: Any) -> None:
    """Tell the middleware's ``before_transition`` hooks, if any, that ``jobs`` are about to move."""
    hooks = installed().before
    if hooks and jobs:
        _call(hooks, Transition(cause, jobs, using, **details))


def _after(cause: Cause, jobs: Sequence[Job], using: str, **details: Any) -> None:
    if not jobs:
        return
    hooks = [*installed().after, *_interested(jobs)]
    if hooks:
        _call(hooks, Transition(cause, jobs, using, **details))


# -- what follows a change ----------------------------------------------------


def created(jobs: list[Job], using: str, task: Task | None) -> None:
    """New jobs were inserted in the caller's transaction: announce them once it commits."""

    def announce() -> None:
        fastpath.push_jobs(jobs)
        publishing.created(jobs)
        if job_created.has_listeners(Job):
            for job in jobs:
                emit(job_created, Job, job=job, task=task)
        waiting = [job.id for job in jobs if job.status == Status.WAITING]
        if waiting:
            # Parents that ended while these were being created: their enders did not see the children.
            _moved(dependencies.move_on(using, waiting, after_creation=True), using)
        _after(Cause.CREATED, jobs, using, task=task)

    transaction.on_commit(announce, using=using)  # at once in autocommit


def queued(jobs: Sequence[Job], using: str, cause: Cause) -> None:
    """``jobs`` were moved to the queue (or to delayed) in the current transaction."""
    if not jobs:
        return
    if cause == Cause.RETRIED:
        # What their failure cancelled waits for them again (in the same transaction).
        _moved(dependencies.parents_retried(using, [job.id for job in jobs]), using)

    def announce() -> None:
        fastpath.push_jobs(jobs)
        if cause not in (Cause.PROMOTED, Cause.SETTLED):  # the worker that did it claims them itself
            tags = {job.tag for job in jobs if job.status == Status.QUEUED}
            if tags:
                get_backend(using).wake_workers(tags)
        _after(cause, jobs, using)

    transaction.on_commit(announce, using=using)  # at once in autocommit


def started(job: Job, task: Task | None, using: str) -> None:
    """A claimed job's code is about to run (its claim is committed)."""
    before(Cause.STARTED, [job], using, task=task)
    publishing.started(job)
    emit(job_started, Job, job=job, task=task)
    _after(Cause.STARTED, [job], using, task=task)


def cancelled(jobs: Sequence[Job], using: str, *, cascade: bool = True) -> None:
    """``jobs`` were cancelled in the current transaction: ``job_cancelled``, and their dependants moved on."""
    if not jobs:
        return
    for job in jobs:
        emit(job_cancelled, Job, job=job, task=registry.find(job.task))
    if cascade:
        _move_dependants(using, [job.id for job in jobs])

    def announce() -> None:
        publishing.cancelled(jobs)
        _after(Cause.CANCELLED, jobs, using)

    transaction.on_commit(announce, using=using)  # at once in autocommit


def attempts_ending(ends: Sequence[Ended], using: str) -> None:
    """Before the write of attempts' ends: the middleware's ``before_transition`` hooks."""
    hooks = installed().before
    if hooks:
        for end in ends:
            _call(hooks, _attempt_transition(end, using))


def attempts_told(ends: Sequence[Ended], applied: Sequence[bool]) -> None:
    """The log line and the signal of each attempt's end, or the warning that it was discarded.

    Sent before the write commits when anyone listens (see :func:`settle`), so
    that no ``job_started`` of the next attempt can come before them.
    """
    for end, ok in zip(ends, applied, strict=True):
        job, settlement = end.job, end.settlement
        if settlement is None:
            continue
        if ok:
            _attempt_told(job, end.task, settlement)
        else:
            logger.warning(
                "Job %s (%s) was cancelled or taken back while it ran; its outcome (%s) was discarded.",
                job.id,
                job.task,
                settlement.outcome,
            )


def attempts_ended(
    ends: Sequence[Ended], applied: Sequence[bool], using: str, awaited: Sequence[bool] = (), *, announced: bool = False
) -> None:
    """After the write of attempts' ends (committed) and :func:`attempts_told`: what follows each applied one.

    ``awaited`` (optional, one per end) says whether another job waits for it,
    when the write could tell; without it the arrows are looked at.
    ``announced``: the write sent the feed's "finished" message itself.
    """
    pushed: list[Job] = []
    recovered: list[Job] = []  # ghosts taken back: first in line
    ended: list[int] = []
    middleware_hooks = installed().after
    for index, (end, ok) in enumerate(zip(ends, applied, strict=True)):
        job, settlement = end.job, end.settlement
        if settlement is None or not ok:
            continue
        publishing.ended(job, settlement, announced=announced)
        if settlement.status == Status.QUEUED:
            (recovered if settlement.lost else pushed).append(job)
        elif settlement.ends_job:
            if not awaited or awaited[index]:
                ended.append(job.id)
            if settlement.status == Status.COMPLETED and end.options is not None and end.options.remove_on_complete:
                removals.add(job.id)
        hooks = [*middleware_hooks, *_interested([job])] if _installed or middleware_hooks else ()
        if hooks:
            _call(hooks, _attempt_transition(end, using))
    fastpath.push_jobs(pushed)
    fastpath.push_jobs(recovered, first=True)
    _move_dependants(using, ended)


def _attempt_transition(end: Ended, using: str) -> Transition:
    settlement = end.settlement
    cause = Cause.SETTLED
    if settlement is not None and settlement.lost:
        cause = Cause.LOST
    elif settlement is not None and settlement.error_code == "timeout":
        cause = Cause.TIMED_OUT
    return Transition(cause, [end.job], using, settlement=settlement, task=end.task)


def _attempt_told(job: Job, task: Task | None, settlement: Settlement) -> None:
    """The log line and the signal of one attempt's end."""
    status = settlement.status
    # As record attributes: for structured logs, and the worker's filter that logs a django.tasks job once.
    about = {"kinetik_job_id": job.id, "kinetik_task_backend": job.task_backend}
    if status == Status.COMPLETED:
        logger.info("Job %s (%s) completed.", job.id, job.task, extra=about)
        emit(job_completed, Job, job=job, task=task)
    elif status in (Status.QUEUED, Status.DELAYED):
        logger.info(
            "Job %s (%s) attempt %s ended (%s); it runs again at %s.",
            *(job.id, job.task, job.attempts, settlement.error, settlement.run_at),
            extra=about,
        )
        emit(job_retrying, Job, job=job, task=task, error=settlement.error, run_at=settlement.run_at)
    elif status == Status.TIMEOUT:
        logger.warning("Job %s (%s) %s.", job.id, job.task, settlement.error, extra=about)
        emit(job_timeout, Job, job=job, task=task, error=settlement.error)
    else:
        logger.warning("Job %s (%s) failed: %s", job.id, job.task, settlement.error, extra=about)
        emit(job_failed, Job, job=job, task=task, error=settlement.error)


def _move_dependants(using: str, parents: list[int]) -> None:
    """Move on the jobs waiting for ``parents``; a database error is left to the workers' sweep."""
    if not parents:
        return
    try:
        _moved(dependencies.parents_ended(using, parents), using)
    except DATABASE_ERRORS as error:
        logger.warning(
            "Could not look for jobs waiting on %d finished job(s) (%s); the workers' sweep will.", len(parents), error
        )


def _moved(moved: dependencies.Moved, using: str) -> None:
    """Announce what a look at waiting jobs moved (it already followed cancelled ones' children)."""
    if moved.released:
        queued(moved.released, using, Cause.RELEASED)
    if moved.cancelled:
        cancelled(moved.cancelled, using, cascade=False)


# -- the changes themselves -----------------------------------------------------


def settle(backend: Backend, ends: Sequence[Ended], *, patience: float = 0.0) -> list[bool]:
    """Write attempts' ends and announce the applied ones; one flag per end.

    ``patience``: seconds to ride out a database that is briefly away (a
    worker's lease); 0 lets the error through.
    """
    ends = [end for end in ends if end.settlement is not None]
    if not ends:
        return []
    attempts_ending(ends, backend.alias)
    pairs = [(end.job, end.settlement) for end in ends if end.settlement is not None]
    awaited: list[bool] | None = None
    announce = publishing.finished_by_database(backend.alias)
    announced = False

    # With receivers, the signals are sent inside the write's transaction: a
    # job retried at once is claimable the moment the write commits, and its
    # next ``job_started`` must not overtake this ``job_retrying``. Without
    # any, the write stays one autocommitted statement.
    heard = any(signal.has_listeners(Job) for signal in _END_SIGNALS)

    def write(retried: bool) -> list[bool]:
        nonlocal awaited, announced
        with transaction.atomic(using=backend.alias) if heard else contextlib.nullcontext():
            written = backend.settle_many(pairs, announce=announce)
            applied, awaited, announced = written.applied, written.awaited, written.announced
            if retried:
                # The earlier attempt may have committed before its connection dropped.
                applied = [ok or backend.was_settled(job, s) for ok, (job, s) in zip(applied, pairs, strict=True)]
                awaited, announced = None, False
            # A commit that fails after this sends them again with the retried write.
            attempts_told(ends, applied)
        return applied

    if patience:
        applied = ride_out(write, patience, f"{len(ends)} job(s)") or [False] * len(ends)
    else:
        applied = write(False)
    attempts_ended(ends, applied, backend.alias, awaited or (), announced=announced)
    return applied


def cancel(ids: Sequence[int], using: str) -> list[Job]:
    """Cancel the live jobs among ``ids``; return those that were (as they are now)."""
    backend = get_backend(using)
    jobs = backend.jobs_in(ids) if installed().before else []
    before(Cause.CANCELLED, jobs, using)
    changed = backend.cancel(ids)
    cancelled(changed, using)
    return changed


def retry(ids: Sequence[int], using: str, *, data: dict[str, Any] | None = None) -> list[Job]:
    """Queue the failed, timed-out and cancelled jobs among ``ids`` again, with fresh attempts (and ``data``)."""
    backend = get_backend(using)
    before(Cause.RETRIED, backend.jobs_in(ids) if installed().before else [], using)
    changed = backend.retry(ids, data=data)
    queued(changed, using, Cause.RETRIED)
    return changed


def run_now(ids: Sequence[int], using: str) -> list[Job]:
    """Queue the delayed and waiting jobs among ``ids`` to run now (waiting ones stop waiting)."""
    backend = get_backend(using)
    before(Cause.RUN_NOW, backend.jobs_in(ids) if installed().before else [], using)
    changed = backend.run_now(ids)
    queued(changed, using, Cause.RUN_NOW)
    return changed


def promote_due(backend: Backend, tags: Sequence[str]) -> tuple[Any, list[Job]]:
    """Queue the delayed jobs of ``tags`` whose time has come: (when the next one is due, those queued)."""
    due, promoted = backend.promote_due(tags)
    queued(promoted, backend.alias, Cause.PROMOTED)
    return due, promoted


def put_back(backend: Backend, job: Job, *, waiting: str = "") -> bool:
    """A claimed job this worker cannot run after all (its code is not here): back to the queue, uncounted.

    ``waiting`` says why it waits, for the admin, the API and ``kinetik_health``.
    """
    before(Cause.PUT_BACK, [job], backend.alias)
    if not backend.release(job, waiting=waiting):
        return False
    job.status = Status.QUEUED
    queued([job], backend.alias, Cause.PUT_BACK)
    return True


def put_back_unfinished(backend: Backend, worker_id: int) -> list[Job]:
    """A stopping worker's still-running jobs go back to the queue (the interrupted attempt is kept)."""
    jobs = backend.requeue_unfinished(worker_id)
    queued(jobs, backend.alias, Cause.PUT_BACK)
    return jobs


def deleting(ids: Sequence[int], using: str) -> None:
    """``ids`` are about to be deleted: the jobs waiting for them go on as if they were cancelled."""
    _moved(dependencies.parents_deleted(using, ids), using)


def sweep(using: str) -> int:
    """Move on waiting jobs a crash left behind (see :func:`.dependencies.stuck`); how many were looked at."""
    stuck = dependencies.stuck(using)
    if stuck:
        _moved(dependencies.move_on(using, stuck), using)
    return len(stuck)


__all__ = ["Cause", "Ended", "Transition", "install", "removals"]
