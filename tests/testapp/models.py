from django.db import models


class Execution(models.Model):
    """Written by the task code itself: proof of how often a job really ran."""

    job_id = models.BigIntegerField()
    attempt = models.PositiveIntegerField()
    pid = models.PositiveIntegerField()
