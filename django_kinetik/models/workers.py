"""A worker process, kept after it stops as the history of what it ran."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class Worker(models.Model):
    """A ``kinetik_worker`` process; kept after it stops as the runs' history."""

    class State(models.TextChoices):
        ONLINE = "online"
        STOPPING = "stopping"
        OFFLINE = "offline"
        LOST = "lost"  # stopped heart-beating without saying goodbye

    name = models.CharField(max_length=200, unique=True)
    host = models.CharField(max_length=200)
    pid = models.PositiveIntegerField()
    tags = models.JSONField(default=list)
    concurrency = models.PositiveIntegerField(default=1)
    state = models.CharField(max_length=10, choices=State.choices, default=State.ONLINE)
    started_at = models.DateTimeField(default=timezone.now)
    last_heartbeat = models.DateTimeField(default=timezone.now)
    stopped_at = models.DateTimeField(null=True, blank=True)
    jobs_done = models.PositiveBigIntegerField(default=0)
    #: threads still running a job that timed out (thread pools cannot kill them)
    runaway_threads = models.PositiveIntegerField(default=0)
    #: slots still held by code whose job was cancelled while it ran (within its CANCEL_GRACE)
    stopping_jobs = models.PositiveIntegerField(default=0, db_default=0)

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["state", "last_heartbeat"], name="kinetik_worker_live")]

    def __str__(self) -> str:
        return self.name
