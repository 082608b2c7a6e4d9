from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from django_kinetik.jobs import stats
from django_kinetik.management.tables import render_table
from django_kinetik.models import Status


class Command(BaseCommand):
    help = "Show how many jobs each task has in each status (Kinetik's `jobs`)."

    def handle(self, *args: Any, **options: Any) -> None:
        counts = stats()
        statuses = list(Status.values)
        rows = [
            [task, *(by_status.get(status, 0) for status in statuses), sum(by_status.values())]
            for task, by_status in sorted(counts["tasks"].items())
        ]
        rows.append(["(all)", *(counts["status"][status] for status in statuses), counts["total"]])
        self.stdout.write(render_table(["TASK", *(s.upper() for s in statuses), "TOTAL"], rows))
