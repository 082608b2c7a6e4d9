from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_kinetik.jobs import clean
from django_kinetik.models import FINISHED_STATUSES


class Command(BaseCommand):
    help = (
        "Delete finished jobs with their logs and runs, in batches. By default every "
        "completed job, like kinetik.clean(). Examples: "
        "`kinetik_clean --older-than 7d`, "
        "`kinetik_clean --status failed --status cancelled --tag mail`."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--status",
            action="append",
            choices=[*FINISHED_STATUSES, "all"],
            help="status to delete (repeatable; 'all' = every finished status; default completed)",
        )
        parser.add_argument("--tag", action="append", help="only jobs of this tag (repeatable)")
        parser.add_argument("--older-than", help='only jobs finished longer ago than this, e.g. "7d"')
        parser.add_argument("--batch-size", type=int, default=1000)

    def handle(self, *args: Any, **options: Any) -> None:
        statuses = options["status"] or ["completed"]
        try:
            deleted = clean(
                tags=options["tag"],
                status=None if "all" in statuses else statuses,
                older_than=options["older_than"],
                batch_size=options["batch_size"],
            )
        except (TypeError, ValueError) as error:
            raise CommandError(str(error)) from None
        self.stdout.write(f"Deleted {deleted} job(s).")
