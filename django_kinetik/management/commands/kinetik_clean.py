from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import CommandParser
from django.db.models import QuerySet
from django.utils import timezone

from django_kinetik.conf import get_settings
from django_kinetik.jobs import batches_of_ids, delete_jobs
from django_kinetik.management.arguments import batch_size, duration_argument, text_argument
from django_kinetik.management.output import KinetikCommand, Progress, add_format_argument, write_json
from django_kinetik.models import FINISHED_STATUSES, Job


class Command(KinetikCommand):
    help = (
        "Delete finished jobs with their logs and runs, in batches: each batch is its own short "
        "transaction, so workers are never blocked for long. By default every completed job, "
        "like kinetik.clean(). Live jobs are never deleted."
    )
    examples = """
  manage.py kinetik_clean                                  # every completed job
  manage.py kinetik_clean --older-than 7d
  manage.py kinetik_clean --status failed --status cancelled --tag mail
  manage.py kinetik_clean --status all --older-than 30d --dry-run
  manage.py kinetik_clean --older-than 1d --batch-size 5000   # fewer, larger transactions
"""

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--status",
            action="append",
            choices=[*(str(status) for status in FINISHED_STATUSES), "all"],
            help="status to delete (repeatable; 'all' = every finished status; default completed)",
        )
        parser.add_argument("--tag", action="append", type=text_argument, help="only jobs of this tag (repeatable)")
        parser.add_argument(
            "--older-than",
            type=duration_argument,
            help='only jobs finished longer ago than this, e.g. "7d", "12h" (a bare number is seconds)',
        )
        parser.add_argument(
            "--batch-size",
            type=batch_size,
            default=1000,
            help="jobs deleted per transaction (default 1000, at most 10,000)",
        )
        parser.add_argument("--dry-run", action="store_true", help="say how many jobs would be deleted; delete none")
        add_format_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        selection = _selection(options)
        if options["dry_run"]:
            self._report(selection.count(), options, dry_run=True)
            return
        # A COUNT (never the ids) sizes the progress bar, and only when someone watches it.
        progress = Progress(self.stderr, selection.count() if self.stderr.isatty() else 0, "Deleting")
        deleted = 0
        # Same loop as kinetik.clean(), batch by batch so the bar can move.
        for ids in batches_of_ids(selection, options["batch_size"]):
            deleted += delete_jobs(ids)
            progress.advance(len(ids))
        progress.finish()
        self._report(deleted, options, dry_run=False)

    def _report(self, count: int, options: dict[str, Any], *, dry_run: bool) -> None:
        if options["format"] == "json":
            write_json(self.stdout, {"dry_run": dry_run, "deleted": count})
        elif dry_run:
            self.stdout.write(f"Would delete {count} job(s) (dry run: nothing deleted).")
        else:
            self.stdout.write(f"Deleted {count} job(s).")


def _selection(options: dict[str, Any]) -> QuerySet[Job]:
    """The jobs kinetik.clean() would delete for these options."""
    statuses = options["status"] or ["completed"]
    selection = Job.objects.using(get_settings().database).finished(
        FINISHED_STATUSES if "all" in statuses else statuses
    )
    if options["tag"]:
        selection = selection.filter(tag__in=options["tag"])
    if options["older_than"] is not None:
        selection = selection.filter(finished_at__lt=timezone.now() - timedelta(seconds=options["older_than"]))
    return selection
