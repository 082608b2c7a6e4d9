from __future__ import annotations

from django.db.models import QuerySet

from django_kinetik.bulk import BulkResult, retry_all
from django_kinetik.models import RETRYABLE_STATUSES, Job

from ._selection import SelectionCommand


class Command(SelectionCommand):
    help = (
        "Queue failed, timed-out or cancelled jobs again with a fresh set of attempts, by id "
        "or by filters (earlier attempts stay in the job's history). Exits 1 if a job given "
        "by id could not be retried."
    )
    examples = """
  manage.py kinetik_retry 41 42
  manage.py kinetik_retry --status failed --task "send email"
  manage.py kinetik_retry --status timeout --tag reports --older-than 1d --dry-run
  manage.py kinetik_retry --status failed --format json
"""
    verb = "retry"
    past = "retried"
    changes_from = RETRYABLE_STATUSES

    def apply(self, jobs: QuerySet[Job], batch_size: int) -> BulkResult:
        return retry_all(jobs, batch_size)

    def refusal(self, status: str) -> str:
        return f"it is {status}; only failed, timeout or cancelled jobs can be retried"
