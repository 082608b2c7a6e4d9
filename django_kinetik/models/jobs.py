"""Jobs, the arrows between them, their attempts and their log lines.

Indexes are chosen for the queries that run at millions of rows; the claim
index and its query plan are explained in ``docs/claiming.md``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db import models
from django.db.models import Q
from django.db.models.base import ModelState
from django.utils import timezone

from .. import services
from .statuses import FINISHED_STATUSES, LIVE_STATUSES, WAITING_FOR_CODE, Outcome, Status
from .workers import Worker

#: the largest id a job can have (a 64-bit key): a larger number names no job, and the
#: database would refuse even to look for it, so callers check ids against it first
MAX_JOB_ID = 2**63 - 1


class JobQuerySet(models.QuerySet["Job"]):
    """The filters the queue asks for again and again, by name."""

    def queued(self) -> JobQuerySet:
        return self.filter(status=Status.QUEUED)

    def delayed(self) -> JobQuerySet:
        return self.filter(status=Status.DELAYED)

    def waiting(self) -> JobQuerySet:
        return self.filter(status=Status.WAITING)

    def active(self) -> JobQuerySet:
        return self.filter(status=Status.ACTIVE)

    def live(self) -> JobQuerySet:
        """Not finished yet: queued, delayed, waiting or running."""
        return self.filter(status__in=LIVE_STATUSES)

    def finished(self, statuses: tuple[str, ...] | list[str] = FINISHED_STATUSES) -> JobQuerySet:
        """Ended (all of them, or those of ``statuses``, which must be finished ones)."""
        return self.filter(status__in=statuses)

    def in_states(self, statuses: tuple[str, ...] | list[str], ids: list[int] | None = None) -> JobQuerySet:
        """In one of ``statuses`` (and among ``ids``, if given): the guard of a transition."""
        queryset = self.filter(status__in=statuses)
        return queryset if ids is None else queryset.filter(pk__in=ids)

    def of_tags(self, tags: list[str] | tuple[str, ...]) -> JobQuerySet:
        return self.filter(tag__in=list(tags))


def worker_reference(related_name: str) -> models.ForeignKey:
    """A link to the worker that ran something.

    No database constraint: claims would otherwise take a KEY SHARE lock on the
    worker row for every job they touch, and worker rows may be purged.
    """
    return models.ForeignKey(
        Worker,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name=related_name,
    )


class Job(models.Model):
    """One unit of work: a task name, its JSON data, and where it is in its life."""

    task = models.CharField(max_length=200)
    tag = models.CharField(max_length=100)
    #: the alias of the ``django.tasks`` backend that enqueued this job ("" for
    #: kinetik's own jobs); such a job's task is the function's module path
    task_backend = models.CharField(max_length=100, blank=True, default="", db_default="")
    #: larger runs first (Django's Tasks framework uses the same direction)
    priority = models.SmallIntegerField(default=0)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    data = models.JSONField(default=dict, blank=True)
    result = models.JSONField(null=True, blank=True)
    #: options given to ``create`` (timeout, retries, ...), resolved when the job runs
    options = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    error_code = models.CharField(max_length=100, blank=True)
    #: attempts started since the job was created (or last retried by hand)
    attempts = models.PositiveIntegerField(default=0)
    #: runs lost with their worker (lease expired) and queued again
    ghosts = models.PositiveSmallIntegerField(default=0)
    #: times the job's code asked to run later (``raise kinetik.Snooze(...)``); not attempts
    snoozes = models.PositiveIntegerField(default=0, db_default=0)
    # NULL, not "", for "no key": the partial unique constraint ignores NULLs.
    unique_key = models.CharField(max_length=200, null=True, blank=True)  # noqa: DJ001
    #: what its task's concurrency and rate limits count this job under ("" = the task as a whole);
    #: NULL for a job of a task without limits, so the limited claim's index holds limited jobs only
    limit_key = models.CharField(max_length=200, null=True, blank=True)  # noqa: DJ001
    #: when the job may run next: when it was asked to, or when its retry (or snooze) is due
    run_at = models.DateTimeField(default=timezone.now)
    #: the ``run_after`` a ``django.tasks`` enqueue gave, kept as given (NULL when none was):
    #: ``run_at`` moves with every retry, this never does
    run_after = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    progress_current = models.FloatField(null=True, blank=True)
    progress_total = models.FloatField(null=True, blank=True)
    progress_data = models.JSONField(null=True, blank=True)
    worker = worker_reference("jobs")
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    #: the jobs this one runs after (``create(after=[...])``); ``job.children`` are the other way
    parents = models.ManyToManyField(
        "self", through="JobDependency", symmetrical=False, related_name="children", blank=True
    )

    objects = JobQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        permissions = [("cancel_job", "Can cancel jobs"), ("retry_job", "Can retry jobs")]
        indexes = [
            # The claim: equality on status and tag, then exactly the ORDER BY,
            # so a claim reads only the rows it takes. ``status`` leads so that
            # on MySQL/MariaDB, which ignore the condition, it is still selective.
            models.Index(
                fields=["status", "tag", "-priority", "run_at", "id"],
                condition=Q(status=Status.QUEUED),
                name="kinetik_job_claim",
            ),
            # The limited claim (backends/limited.py): one limited task's queued
            # jobs in one tag, in claim order, without reading the rest of the
            # tag. Only jobs with a limit key are in it: other inserts pay nothing.
            models.Index(
                fields=["status", "task", "tag", "-priority", "run_at", "id"],
                condition=Q(status=Status.QUEUED) & Q(limit_key__isnull=False),
                name="kinetik_job_limited",
            ),
            # The limited claim's count of running jobs per key: only limited jobs
            # pass through it, so its dead entries stay few (see limited.py).
            models.Index(
                fields=["task", "limit_key"],
                condition=Q(status=Status.ACTIVE) & Q(limit_key__isnull=False),
                name="kinetik_job_limited_running",
            ),
            # Promoting delayed jobs whose time has come.
            models.Index(
                fields=["status", "run_at"],
                condition=Q(status=Status.DELAYED),
                name="kinetik_job_due",
            ),
            # Jobs waiting for their parents: the safety-net sweep (dependencies.py) reads only these.
            models.Index(fields=["status", "id"], condition=Q(status=Status.WAITING), name="kinetik_job_waiting"),
            # Heartbeats and lease recovery look only at running jobs.
            models.Index(
                fields=["status", "lease_expires_at"],
                condition=Q(status=Status.ACTIVE),
                name="kinetik_job_leases",
            ),
            # Cleaning and browsing finished jobs. Partial on purpose: an index
            # led by ``status`` that could also answer the claim tempts the
            # planner whenever statistics are stale (after a burst of new jobs)
            # into reading and sorting the whole backlog on every claim.
            models.Index(
                fields=["status", "finished_at"],
                condition=Q(status__in=FINISHED_STATUSES),
                name="kinetik_job_finished",
            ),
            models.Index(
                fields=["status", "-id"], condition=Q(status__in=FINISHED_STATUSES), name="kinetik_job_outcome"
            ),
            # The admin's tag and task filters, newest first. Safe for the claim:
            # their only condition is the tag (or task), whose estimate stays
            # large, so the claim index always looks cheaper.
            models.Index(fields=["tag", "-id"], name="kinetik_job_tag"),
            models.Index(fields=["task", "-id"], name="kinetik_job_task"),
            models.Index(fields=["created_at"], name="kinetik_job_created"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["unique_key"],
                condition=Q(status__in=LIVE_STATUSES) & Q(unique_key__isnull=False),
                name="kinetik_job_unique_live_key",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.task} #{self.pk} ({self.status})"

    @classmethod
    def loaded(cls, alias: str, values: dict[str, Any]) -> Job:
        """A row known to be in the database, built from every field's value.

        For the hot path (claims, create_many): the same object ``from_db``
        builds, without ``Model.__init__``'s per-field work, which was a third
        of create_many's time. ``values`` must hold every concrete field's attname.
        """
        job = cls.__new__(cls)
        job.__dict__.update(values)
        job._state = ModelState()
        job._state.adding = False
        job._state.db = alias
        return job

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_STATUSES

    @property
    def duration(self) -> timedelta | None:
        if self.started_at and self.finished_at:
            return self.finished_at - self.started_at
        return None

    @property
    def progress_percent(self) -> float | None:
        if self.progress_current is None or not self.progress_total:
            return None
        return max(0.0, min(100.0, 100.0 * self.progress_current / self.progress_total))

    @property
    def waiting_reason(self) -> str:
        """Why a queued job is not running although workers serve its tag ("" when nothing holds it).

        Set by a worker that claimed it without its code (an older deploy):
        "waiting for a worker that can import myapp.tasks.gone: worker ... (started
        before the job) cannot: ...". Kept in ``error`` with the code
        ``waiting_for_code``, which the job's next attempt replaces.
        """
        if self.status == Status.QUEUED and self.error_code == WAITING_FOR_CODE:
            return self.error
        return ""

    def cancel(self) -> bool:
        """Cancel a live job; False if it had already finished. The same as :func:`django_kinetik.cancel`.

        A running job's code is not interrupted; whatever it returns is discarded.
        The jobs waiting for it are cancelled too (unless they run anyway:
        ``on_parent_failure="run"``).
        """
        return services.bound().cancel(self)

    def retry(self) -> bool:
        """Queue a failed, timed-out or cancelled job again with a fresh set of attempts.

        The same as :func:`django_kinetik.retry`. Earlier attempts stay in
        ``job.runs``; False if the job is not in a retryable state. The jobs
        that were cancelled because it failed wait for it again.
        """
        return services.bound().retry(self)

    def wait(self, timeout: Any = None, poll: Any = "50ms") -> Any:
        """Block until the job finishes (at most ``timeout``); return its result or raise.

        With Redis or PostgreSQL this wakes on the worker's announcement of the
        job's end (see :mod:`django_kinetik.waiting`); elsewhere it polls the
        row, every ``poll`` at first. Both are durations as everywhere in
        Python: ``"10s"``, a ``timedelta``, or a bare number of milliseconds.

        Raises :class:`~django_kinetik.exceptions.JobFailed` (failed or timed out),
        :class:`~django_kinetik.exceptions.JobCancelled` or
        :class:`~django_kinetik.exceptions.WaitTimeout`.
        """
        return services.bound().wait(self, timeout, poll)

    async def await_result(self, timeout: Any = None, poll: Any = "50ms") -> Any:
        """:meth:`wait` for async code (an async view, a consumer): the event loop never blocks.

        Same result and exceptions as :meth:`wait`; the row is read with
        Django's async ORM, and the end of the job is awaited on the process's
        shared listener.
        """
        return await services.bound().await_result(self, timeout, poll)


class JobDependency(models.Model):
    """One arrow of ``create(after=[...])``: ``child`` runs after ``parent`` has finished.

    ``done`` once the parent's end lets the child go on (it completed, or it
    failed and the child runs anyway: ``on_parent_failure="run"``); a child
    whose arrows are all done is queued (see ``dependencies.py``).
    """

    child = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="parent_links", db_index=False)
    parent = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="child_links", db_index=False)
    done = models.BooleanField(default=False)

    class Meta:
        ordering = ["child", "id"]
        constraints = [models.UniqueConstraint(fields=["child", "parent"], name="kinetik_dependency_once")]
        # A parent's children, first ones first, without sorting a fan-out of thousands
        # (the admin shows the first 20); also the settle's "does anyone wait for it".
        indexes = [models.Index(fields=["parent", "id"], name="kinetik_dependency_parent")]

    def __str__(self) -> str:
        return f"job {self.child_id} after job {self.parent_id}"


class JobRun(models.Model):
    """One attempt at a job: when, where, and how it ended."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="runs", db_index=False)
    attempt = models.PositiveIntegerField()
    worker = worker_reference("runs")
    outcome = models.CharField(max_length=12, choices=Outcome.choices)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField()
    error = models.TextField(blank=True)
    error_code = models.CharField(max_length=100, blank=True)
    #: dotted path of the exception class that ended the attempt, importable
    exception = models.CharField(max_length=255, blank=True, default="", db_default="")
    traceback = models.TextField(blank=True)

    class Meta:
        ordering = ["job", "id"]
        indexes = [models.Index(fields=["job", "id"], name="kinetik_run_job")]

    def __str__(self) -> str:
        return f"job {self.job_id} attempt {self.attempt}: {self.outcome}"

    @property
    def duration(self) -> timedelta:
        return self.finished_at - self.started_at


class JobLog(models.Model):
    """A line a job wrote with ``job.log(message, data)``."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="logs", db_index=False)
    attempt = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    message = models.TextField()
    data = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["job", "id"]
        indexes = [models.Index(fields=["job", "id"], name="kinetik_log_job")]

    def __str__(self) -> str:
        return self.message
