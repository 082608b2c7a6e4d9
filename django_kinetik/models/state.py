"""What workers share besides jobs: paused tags, periodic tasks' slots, limits' counts."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class TagState(models.Model):
    """A tag that has been paused (``kinetik.pause(tag)``); workers skip it."""

    tag = models.CharField(max_length=100, primary_key=True)
    paused = models.BooleanField(default=False)
    changed_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.tag} ({'paused' if self.paused else 'running'})"


class Schedule(models.Model):
    """Where a periodic task is on its schedule: the last slot that got a job, and the next one.

    Workers claim a slot by moving ``last_slot`` forward with a conditional
    ``UPDATE ... WHERE last_slot < slot`` in the transaction that creates its
    job, so however many workers look, a slot gets one job (``worker/scheduler.py``).
    """

    task = models.CharField(max_length=200, primary_key=True)
    #: the timing the slots were computed from (``"*/5 * * * *"``, ``"every 10m"``)
    schedule = models.CharField(max_length=200)
    #: the latest slot a job was created for (None: none yet)
    last_slot = models.DateTimeField(null=True, blank=True)
    next_slot = models.DateTimeField()

    class Meta:
        ordering = ["task"]

    def __str__(self) -> str:
        return f"{self.task} ({self.schedule})"


class LimitState(models.Model):
    """What one task's limits know across workers, per limit key.

    ``starts`` counts the jobs started per slice of the rate limit's period
    (``backends/limited.py``). The row with key ``""`` always exists for a
    limited task: workers lock it to take the task's jobs one claim at a time,
    so a limit is never exceeded by two workers claiming at once.
    """

    task = models.CharField(max_length=200)
    key = models.CharField(max_length=200, blank=True)
    #: {slice number: jobs started in it}, for the slices of the last rate period
    starts = models.JSONField(default=dict, blank=True)
    changed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["task", "key"], name="kinetik_limit_task_key")]

    def __str__(self) -> str:
        return f"{self.task} [{self.key}]" if self.key else self.task


class Hold(models.Model):
    """A fleet-wide pause of one task, or of one of its limit keys, until a moment.

    Written when a job's code raises ``kinetik.RateLimited(retry_after=...)``
    (a downstream said "429, come back later"): no job of the task (key ``""``)
    or of that limit key starts before ``until``; jobs of other keys go on.
    """

    task = models.CharField(max_length=200)
    #: the limit key held ("" = the whole task)
    key = models.CharField(max_length=200, blank=True)
    until = models.DateTimeField()
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["task", "key"], name="kinetik_hold_task_key")]
        indexes = [models.Index(fields=["until"], name="kinetik_hold_until")]

    def __str__(self) -> str:
        return (
            f"{self.task} [{self.key}] until {self.until:%Y-%m-%d %H:%M:%S}"
            if self.key
            else f"{self.task} until {self.until:%Y-%m-%d %H:%M:%S}"
        )
