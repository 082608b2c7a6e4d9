"""Jobs that run after other jobs: ``create(..., after=[job, ...])``.

A job created with ``after`` is ``waiting`` until every parent has finished.
Then it is queued (or delayed, if its own ``delay`` has not passed yet). If a
parent fails, times out or is cancelled, the child is cancelled, and so are
the jobs waiting on it in turn, unless it was created with
``on_parent_failure="run"``: then it runs once all its parents have finished,
however they ended. That is enough for chains (``b`` after ``a``, ``c`` after
``b``) and fan-in (one job after many); a child reads its parents' results
through ``job.parents``.

This module computes and writes the moves; :mod:`.lifecycle` calls it when a
parent ends and announces what moved (Redis, the feed, signals).

Who moves a waiting job on, and why none is forgotten: whoever ends a parent
(the worker that settles it, a cancel, a delete) looks for its waiting
children after its own write has committed, and so does the creating process
just after the child has committed. A look reads the parents' statuses, so of
two looks racing (two parents ending, or a parent ending while its child is
being created) the later one sees both writes and moves the child on. (A
PostgreSQL or SQLite batch settle asks inside its own statement whether
anyone waits, which costs no round trip; on PostgreSQL the creator's look
then waits for any settle in flight on its parents, see
``wait_for_settles_of_parents``; on SQLite none can be in flight, as the look
starts by taking the write lock.) Moving is guarded by
``status = 'waiting'``, so doing it twice is harmless, and its transaction
starts by writing the child rows, so two movers of one child take turns (and
SQLite's write lock is held from the first statement, as everywhere in
kinetik). A worker's periodic :func:`sweep` catches what a crash between a
commit and its look left behind.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from .backends import get_backend
from .models import FINISHED_STATUSES, MAX_JOB_ID, Job, JobDependency, Status

logger = logging.getLogger("django_kinetik")

#: a child's options key for what it does when a parent does not complete (see options.py)
POLICY = "on_parent_failure"
#: the error_code of a job cancelled because a job it runs after did not complete
PARENT_FAILED = "parent_failed"
#: a parent deleted before it completed counts as this (like cancelled)
GONE = "deleted"
#: the parent statuses that do not let a ``cancel`` child go on
FAILED_STATUSES = (*(status for status in FINISHED_STATUSES if status != Status.COMPLETED), GONE)
#: children looked at per transaction
BATCH = 500


def parent_ids(after: Any) -> list[int]:
    """The ids of ``after`` (jobs or ids), in order, without repeats; a clear error for anything else."""
    if isinstance(after, (Job, int, str)) or not isinstance(after, Iterable):
        raise TypeError(f"after must be a list of jobs or job ids, not {type(after).__name__}")
    ids: dict[int, None] = {}
    for item in after:
        if isinstance(item, Job):
            if item.pk is None:
                raise ValueError("after: a job that was never saved cannot be waited for")
            ids[item.pk] = None
        elif isinstance(item, int) and not isinstance(item, bool):
            if not 1 <= item <= MAX_JOB_ID:
                # No row has such an id, and the database would refuse to look for one past its range.
                raise ValueError(f"after: there is no job with id {item}")
            ids[item] = None
        else:
            raise TypeError(f"after must hold jobs or job ids, not {type(item).__name__} {item!r}")
    return list(ids)


def start_state(using: str, parents: Sequence[int], policy: str) -> tuple[str | None, dict[int, bool], str]:
    """How a child of ``parents`` starts: (status or None for "as usual", {parent: done}, why cancelled).

    Raises ``ValueError`` naming the ids that are no job. Parents that end
    after this read are caught by :func:`created`.
    """
    statuses = dict(Job.objects.using(using).filter(pk__in=list(parents)).values_list("pk", "status"))
    missing = [job_id for job_id in parents if job_id not in statuses]
    if missing:
        raise ValueError(f"after: there is no job with id {', '.join(map(str, missing))}")
    done = {job_id: _lets_go_on(statuses[job_id], policy) for job_id in parents}
    failed = [job_id for job_id in parents if statuses[job_id] in FAILED_STATUSES]
    if failed and policy == "cancel":
        return Status.CANCELLED, done, _why(failed[0], statuses[failed[0]])
    if all(done.values()):
        return None, done, ""
    return Status.WAITING, done, ""


def _lets_go_on(parent_status: str, policy: str) -> bool:
    return parent_status == Status.COMPLETED or (policy == "run" and parent_status in FAILED_STATUSES)


def _why(parent: int, status: str) -> str:
    ended = {
        Status.FAILED: "failed",
        Status.TIMEOUT: "timed out",
        Status.CANCELLED: "was cancelled",
        GONE: "was deleted",
    }
    return f"Job #{parent}, which this job runs after, {ended.get(status, status)}."


def link(using: str, children: Sequence[Job], done: dict[int, bool]) -> None:
    """Record the arrows from each of ``children`` to the parents (inside the creating transaction)."""
    JobDependency.objects.using(using).bulk_create(
        [
            JobDependency(child_id=child.pk, parent_id=parent, done=ok)
            for child in children
            for parent, ok in done.items()
        ],
        batch_size=1000,
    )


@dataclass
class Moved:
    """What a look moved: children queued (or delayed, their own delay not over yet) and children cancelled."""

    released: list[Job] = field(default_factory=list)
    cancelled: list[Job] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.released or self.cancelled)


def waiting_for(using: str, parents: Sequence[int], *, besides: Sequence[int] = ()) -> list[int]:
    """The children whose arrows from ``parents`` are still open (not ``besides`` themselves)."""
    if not parents:
        return []
    arrows = JobDependency.objects.using(using).filter(parent_id__in=list(parents), done=False)
    if besides:
        arrows = arrows.exclude(child_id__in=list(besides))
    return list(arrows.values_list("child_id", flat=True).distinct())


def parents_ended(using: str, parents: Sequence[int]) -> Moved:
    """``parents`` reached an end (committed): move their waiting children on."""
    return move_on(using, waiting_for(using, parents))


def parents_deleted(using: str, parents: Sequence[int]) -> Moved:
    """``parents`` are about to be deleted: the jobs waiting for them go on as if they were cancelled."""
    return move_on(using, waiting_for(using, parents, besides=parents), gone=set(parents))


def parents_retried(using: str, parents: Sequence[int]) -> Moved:
    """``parents`` were retried: the jobs cancelled because one of them failed wait for them again.

    And so do their own children cancelled in turn. One that another parent
    still holds back for good is cancelled again right away.
    """
    jobs = Job.objects.using(using)
    revived: list[int] = []
    pending = list(parents)
    while pending:
        children = waiting_for(using, pending)
        doomed = jobs.in_states([Status.CANCELLED], children).filter(error_code=PARENT_FAILED)
        pending = list(doomed.values_list("pk", flat=True))
        # Guarded by what made them cancelled: a job cancelled by hand stays cancelled.
        doomed.filter(pk__in=pending).update(status=Status.WAITING, error="", error_code="", finished_at=None)
        revived += pending
    if not revived:
        return Moved()
    logger.info("%d job(s) cancelled for a failed parent wait again: it was retried.", len(revived))
    return move_on(using, revived)


def move_on(
    using: str,
    children: Sequence[int],
    gone: set[int] = frozenset(),  # type: ignore[assignment]
    *,
    after_creation: bool = False,
) -> Moved:
    """Queue the waiting ``children`` whose parents all let them go on; cancel those a parent failed.

    Cancelled children's own waiting children follow, until nothing changes.
    Parents in ``gone`` are being deleted: they count as cancelled.
    ``after_creation``: the look of the process that just created the children.
    Returns everything that moved, for the lifecycle to announce.
    """
    moved = Moved()
    pending = list(dict.fromkeys(children))
    while pending:
        batch, pending = pending[:BATCH], pending[BATCH:]
        released, cancelled = _move_batch(using, batch, gone, after_creation)
        after_creation = False
        moved.released += released
        moved.cancelled += cancelled
        for job in released:
            logger.info("Job %s (%s): the jobs it runs after have finished; it is %s.", job.pk, job.task, job.status)
        for job in cancelled:
            logger.info("Job %s (%s) cancelled: %s", job.pk, job.task, job.error)
        if cancelled:
            pending += waiting_for(using, [job.pk for job in cancelled])
    return moved


def _move_batch(using: str, ids: list[int], gone: set[int], after_creation: bool) -> tuple[list[Job], list[Job]]:
    jobs = Job.objects.using(using)
    now = timezone.now()
    with transaction.atomic(using=using):
        # Write first: the children are ours until commit (no second mover sees them half-moved).
        if not jobs.in_states([Status.WAITING], ids).update(status=Status.WAITING):
            return [], []
        if after_creation:
            # A batch settle that began before these arrows existed did not see them:
            # wait for any settle in flight on the parents, so the statuses read next are final.
            get_backend(using).wait_for_settles_of_parents(ids)
        children = list(jobs.in_states([Status.WAITING], ids))
        links = list(
            JobDependency.objects.using(using)
            .filter(child_id__in=[child.pk for child in children], done=False)
            .values_list("pk", "child_id", "parent_id", "parent__status")
        )
        open_links: dict[int, list[tuple[int, int, str]]] = {child.pk: [] for child in children}
        for link_id, child_id, parent_id, status in links:
            open_links[child_id].append((link_id, parent_id, GONE if parent_id in gone else status))
        done_links: list[int] = []
        released: list[Job] = []
        cancelled: list[Job] = []
        for child in children:
            policy = child.options.get(POLICY, "cancel")
            failed = [(parent, status) for _, parent, status in open_links[child.pk] if status in FAILED_STATUSES]
            if failed and policy == "cancel":
                child.error, child.error_code = _why(*failed[0]), PARENT_FAILED
                cancelled.append(child)
                continue
            still_open = False
            for link_id, _, status in open_links[child.pk]:
                if _lets_go_on(status, policy):
                    done_links.append(link_id)
                else:
                    still_open = True
            if not still_open:
                child.status = Status.DELAYED if child.run_at > now else Status.QUEUED
                released.append(child)
        JobDependency.objects.using(using).filter(pk__in=done_links).update(done=True)
        for status in (Status.QUEUED, Status.DELAYED):
            ids_now = [child.pk for child in released if child.status == status]
            if ids_now:
                jobs.in_states([Status.WAITING], ids_now).update(status=status)
        for child in cancelled:
            jobs.in_states([Status.WAITING], [child.pk]).update(
                status=Status.CANCELLED, finished_at=now, error=child.error, error_code=child.error_code
            )
            child.status, child.finished_at = Status.CANCELLED, now
    return released, cancelled


def stuck(using: str, limit: int = BATCH) -> list[int]:
    """Waiting jobs that no live parent holds back: missed by a look that never ran (a crash).

    Cheap: the partial index ``kinetik_job_waiting`` holds only waiting jobs.
    """
    live_parent = JobDependency.objects.using(using).filter(
        Q(child_id=OuterRef("pk")) & Q(done=False) & ~Q(parent__status__in=FINISHED_STATUSES)
    )
    return list(
        Job.objects.using(using)
        .waiting()
        .filter(~Exists(live_parent))
        .order_by("id")
        .values_list("pk", flat=True)[:limit]
    )
