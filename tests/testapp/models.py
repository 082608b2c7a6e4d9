from django.db import models


class Execution(models.Model):
    """Written by the task code itself: proof of how often a job really ran."""

    job_id = models.BigIntegerField()
    attempt = models.PositiveIntegerField()
    pid = models.PositiveIntegerField()
    #: the job's side effect was already there: an earlier run got that far
    duplicate = models.BooleanField(default=False)
    #: another run of the same job held its lock: two runs at once
    overlapped = models.BooleanField(default=False)


class Effect(models.Model):
    """A job's side effect, at most one per job (unique key)."""

    job_id = models.BigIntegerField(unique=True)
