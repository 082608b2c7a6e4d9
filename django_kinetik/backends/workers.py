"""The worker rows, and a worker's view of the jobs it runs: the portable (ORM) implementation.

A mixin of :class:`~django_kinetik.backends.orm.OrmBackend` (and so of every
backend): registering, heart-beating and retiring workers, which jobs running
here are no longer this worker's (cancelled, taken back, deleted), and the
record of an attempt cancelled while it ran.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from django.db.models import Case, F, Value, When
from django.utils import timezone

from ..models import Job, JobRun, Outcome, Status, TagState, Worker
from .base import WorkerInfo

T = TypeVar("T")


class WorkerRows:
    """Worker rows and running jobs through the ORM; the backend it is mixed into supplies the rest."""

    alias: str
    jobs: Callable[[], Any]
    atomic: Callable[[], Any]
    retrying_locks: Callable[[Callable[[], T]], T]

    def register_worker(self, info: WorkerInfo) -> int:
        now = timezone.now()
        worker = Worker.objects.using(self.alias).create(
            name=info.name,
            host=info.host,
            pid=info.pid,
            tags=list(info.tags),
            concurrency=info.concurrency,
            started_at=now,
            last_heartbeat=now,
        )
        return worker.pk

    def retire_worker(self, worker_id: int, stats: dict[str, int]) -> None:
        now = timezone.now()
        workers = Worker.objects.using(self.alias).filter(pk=worker_id)
        self.retrying_locks(
            lambda: workers.update(state=Worker.State.OFFLINE, stopped_at=now, last_heartbeat=now, **stats)
        )

    def heartbeat(self, worker_id: int, lease: float, running: Sequence[int], stats: dict[str, int]) -> None:
        now = timezone.now()

        def beat() -> None:
            # A worker marked lost (cut off for a while) is back once a beat gets through.
            back = Case(When(state=Worker.State.LOST, then=Value(Worker.State.ONLINE)), default=F("state"))
            Worker.objects.using(self.alias).filter(pk=worker_id).update(last_heartbeat=now, state=back, **stats)
            if running:
                self.jobs().active().filter(id__in=list(running), worker_id=worker_id).update(
                    lease_expires_at=now + timedelta(seconds=lease),
                )

        self.retrying_locks(beat)

    def mark_lost_workers(self, silent_for: float) -> int:
        cutoff = timezone.now() - timedelta(seconds=silent_for)
        silent = Worker.objects.using(self.alias).filter(
            state__in=(Worker.State.ONLINE, Worker.State.STOPPING), last_heartbeat__lt=cutoff
        )
        return self.retrying_locks(lambda: silent.update(state=Worker.State.LOST))

    def paused_tags(self) -> set[str]:
        return set(TagState.objects.using(self.alias).filter(paused=True).values_list("tag", flat=True))

    def gone_from(self, worker_id: int, ids: Sequence[int]) -> dict[int, str | None]:
        """Which of ``ids`` (running here) are no longer this worker's: id -> status now (None: deleted)."""
        if not ids:
            return {}
        rows = self.jobs().filter(id__in=list(ids)).values_list("id", "status", "worker_id")
        now = {job_id: (status, worker) for job_id, status, worker in rows}
        return {
            job_id: now[job_id][0] if job_id in now else None
            for job_id in ids
            if now.get(job_id) != (Status.ACTIVE, worker_id)
        }

    def record_cancelled_run(self, job: Job, worker_id: int, started_at: datetime) -> bool:
        """The history row of an attempt cancelled while it ran (if the job is still that cancelled attempt)."""
        with self.atomic():
            cancelled_at = (
                self.jobs()
                .filter(pk=job.id, status=Status.CANCELLED, attempts=job.attempts)
                .values_list("finished_at", flat=True)
                .first()
            )
            if cancelled_at is None:
                return False
            JobRun.objects.using(self.alias).create(
                job_id=job.id,
                attempt=job.attempts,
                worker_id=worker_id,
                outcome=Outcome.CANCELLED,
                started_at=started_at,
                finished_at=cancelled_at or timezone.now(),
                error="cancelled while it ran",
                error_code="cancelled",
            )
        return True
