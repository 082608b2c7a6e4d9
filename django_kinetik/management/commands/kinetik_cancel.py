from __future__ import annotations

from django.db.models import QuerySet

from django_kinetik.bulk import BulkResult, cancel_all
from django_kinetik.models import LIVE_STATUSES, Job

from ._selection import SelectionCommand


class Command(SelectionCommand):
    help = (
        "Cancel queued, delayed or running jobs, by id or by filters. A running job is marked "
        "cancelled at once; its code is not interrupted and its result is discarded. Exits 1 "
        "if a job given by id could not be cancelled."
    )
    examples = """
  manage.py kinetik_cancel 41 42 43
  manage.py kinetik_cancel --task "send email" --status queued --status delayed
  manage.py kinetik_cancel --tag mail --older-than 2h --dry-run
  manage.py kinetik_cancel --tag mail --format json
"""
    verb = "cancel"
    past = "cancelled"
    changes_from = LIVE_STATUSES

    def apply(self, jobs: QuerySet[Job], batch_size: int) -> BulkResult:
        return cancel_all(jobs, batch_size)

    def refusal(self, status: str) -> str:
        return f"already {status}"
