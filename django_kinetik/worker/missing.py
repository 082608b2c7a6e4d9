"""Jobs whose code is not in this worker: wait for a worker that has it, or fail once none can.

During a rolling deploy an old worker meets jobs of django.tasks functions only
the new code defines, so a worker started before a job was created that cannot
import its function leaves it, and says why on the job (its ``error``, code
``waiting_for_code``), for the admin, the API and ``kinetik_health``. It stops
claiming that function, so it never spins on it.

But a worker started after the job was created runs code at least as new as
whatever created the job: if it cannot import it either, nothing ever will (the
module was removed or renamed, the path is a typo), and the job fails
with code ``not_importable``, an end like any other (signals, ``task_finished``,
the admin), which ``kinetik.retry()`` undoes once the code is there.

That is for django.tasks jobs, which name a function by module path: every
worker serving a django.tasks backend is meant to have the project's code.
Kinetik jobs of tasks a worker does not define are never claimed there (another
service's workers may share the tag and define them): a duty looks for them in
its tags now and then and says why they wait, and ``kinetik_health --max-age``
reports one that waits too long, with that reason.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime

from .. import lifecycle, outcomes
from ..backends.base import Backend
from ..exceptions import TaskNotImportable, UnknownTask
from ..execution import Ending
from ..models import Job
from ..registry import registry
from .claims import Claims

logger = logging.getLogger("django_kinetik.worker")

#: seconds between looks for queued kinetik jobs of tasks this worker does not define
LOOK_EVERY = 30.0
#: jobs looked at per look (each missing task's jobs are dealt with together)
LOOK_LIMIT = 200


def _reason(error: UnknownTask) -> str:
    if isinstance(error, TaskNotImportable):
        return error.reason
    return "no task of that name is defined there"


class MissingCode:
    """What one worker does with a job it has no code for."""

    def __init__(
        self, backend: Backend, worker_name: str, started_at: datetime, claims: Claims, fail: Callable[[Ending], None]
    ) -> None:
        self.backend = backend
        self.worker_name = worker_name
        self.started_at = started_at
        self.claims = claims
        self.fail = fail

    def waiting(self, task: str, error: UnknownTask) -> str:
        """Why a job of ``task`` waits: which worker could not run it, and why."""
        return (
            f"waiting for a worker that can import {task}: worker {self.worker_name} "
            f"(started before the job) cannot: {_reason(error)}"
        )

    def claimed(self, job: Job, error: UnknownTask) -> None:
        """A job claimed here whose code is not here: fail it, or put it back saying why it waits."""
        if job.created_at >= self.started_at or not isinstance(error, TaskNotImportable):
            # Possibly an older worker than the code that created the job (or a kinetik
            # task, which another service may define): leave it.
            self.claims.exclude(job.task)
            why = self.waiting(job.task, error)
            logger.warning("Job %s (%s): %s; leaving it queued.", job.id, job.task, why)
            lifecycle.put_back(self.backend, job, waiting=why)
            return
        message = (
            f"no worker can import {job.task}: worker {self.worker_name}, started after the job "
            f"was created, cannot: {_reason(error)}"
        )
        exception = f"{type(error).__module__}.{type(error).__qualname__}"
        self.fail(Ending(job, outcomes.not_importable(message, exception)))


class UnknownTasks:
    """The duty that says why this worker's tags' queued kinetik jobs of tasks it does not define wait.

    They are never failed: a kinetik job names its task, which another service's
    workers sharing the tag may define (``kinetik.create("resize", tag="images")``).
    Each is noted once, by the first worker to see it; its next attempt clears the note.
    """

    def __init__(self, missing: MissingCode, tags: Callable[[], Sequence[str]]) -> None:
        self.missing = missing
        self.tags = tags
        self.next_at = 0.0

    def run(self, now: float) -> bool:
        self.next_at = now + LOOK_EVERY
        backend = self.missing.backend
        found: dict[tuple[str, str], list[int]] = defaultdict(list)
        for job_id, task, tag in backend.without_code(self.tags(), registry.names(), LOOK_LIMIT):
            found[(task, tag)].append(job_id)
        for (task, tag), ids in found.items():
            why = (
                f"waiting for a worker that defines task {task!r}: worker {self.missing.worker_name}, "
                f"which serves tag {tag!r}, has no task of that name"
            )
            if backend.note_waiting(ids, why):
                logger.warning(
                    "Worker %s has no task %r: %d job(s) of it wait.", self.missing.worker_name, task, len(ids)
                )
        return False
