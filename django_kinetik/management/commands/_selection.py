"""What ``kinetik_retry`` and ``kinetik_cancel`` share: choosing jobs and changing them in batches.

(The leading underscore keeps Django from listing this module as a command.)

Jobs are chosen by id, or by filters that are read in keyset batches
(:func:`~django_kinetik.jobs.batches_of_ids`), so a selection of a million
rows never sits in memory; each batch goes through :mod:`django_kinetik.bulk`,
whose conditional UPDATEs skip jobs that changed state meanwhile and send the
usual signals for the rest.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import timedelta
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.db.models import QuerySet
from django.utils import timezone

from django_kinetik.bulk import BulkResult
from django_kinetik.conf import get_settings
from django_kinetik.jobs import batches_of_ids
from django_kinetik.management.arguments import batch_size, duration_argument, job_id_argument, text_argument
from django_kinetik.management.output import KinetikCommand, Progress, add_format_argument, write_json
from django_kinetik.management.tables import render_table
from django_kinetik.models import Job


class SelectionCommand(KinetikCommand):
    """Apply one bulk operation to jobs given by id or by filters."""

    #: "cancel" or "retry", as written in messages
    verb: str
    #: "cancelled" or "retried"
    past: str
    #: the statuses the operation changes; other jobs are reported, not touched
    changes_from: tuple[str, ...]

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("ids", nargs="*", type=job_id_argument, metavar="ID", help=f"jobs to {self.verb}")
        filters = parser.add_argument_group("filters (instead of ids; every job matching all of them)")
        filters.add_argument(
            "--status",
            action="append",
            choices=[str(status) for status in self.changes_from],
            help=f"only jobs in this status (repeatable; default: every status a job can be {self.past} from)",
        )
        filters.add_argument("--task", action="append", type=text_argument, help="only jobs of this task (repeatable)")
        filters.add_argument("--tag", action="append", type=text_argument, help="only jobs of this tag (repeatable)")
        filters.add_argument(
            "--older-than",
            type=duration_argument,
            help='only jobs created longer ago than this, e.g. "7d", "12h" (a bare number is seconds)',
        )
        parser.add_argument(
            "--dry-run", action="store_true", help=f"say how many jobs would be {self.past}; change none"
        )
        parser.add_argument(
            "--batch-size",
            type=batch_size,
            default=500,
            help="jobs changed per transaction (default 500, at most 10,000)",
        )
        add_format_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        ids: list[int] = list(dict.fromkeys(options["ids"]))
        filtered = any(options[name] for name in ("status", "task", "tag", "older_than"))
        if ids and filtered:
            raise CommandError(f"Give job ids or filters, not both: ids {self.verb} exactly those jobs.")
        if not ids and not filtered:
            raise CommandError(
                f"Say which jobs to {self.verb}: give their ids, or filters such as --status, --task, "
                f"--tag or --older-than (see --help). Nothing was {self.past}."
            )
        batch_size = options["batch_size"]
        refused: list[tuple[int, str]] = []
        batches: Iterable[list[int]]
        if ids:
            eligible, refused = self._check_ids(ids, batch_size)
            total, batches = len(eligible), _chunks(eligible, batch_size)
        else:
            selection = self._filtered(options)
            # A COUNT, never the ids: for a dry run, or to size a progress bar someone watches.
            total = selection.count() if options["dry_run"] or self.stderr.isatty() else 0
            batches = batches_of_ids(selection, batch_size)  # lazy: read only if changes are made
        if options["dry_run"]:
            changed, skipped = total, 0
        else:
            changed, skipped = self._change(batches, total)
        self._report(changed, skipped, refused, dry_run=options["dry_run"], as_json=options["format"] == "json")
        if refused and not options["dry_run"]:
            raise CommandError(f"{len(refused)} of {len(ids)} job(s) could not be {self.past}.")

    def _change(self, batches: Iterable[list[int]], total: int) -> tuple[int, int]:
        """Apply the operation batch by batch; return how many changed and how many changed meanwhile."""
        changed = skipped = 0
        progress = Progress(self.stderr, total, self.past.capitalize())
        using = get_settings().database
        for batch in batches:
            result = self.apply(Job.objects.using(using).filter(pk__in=batch), len(batch))
            changed += result.changed
            skipped += result.skipped
            progress.advance(len(batch))
        progress.finish()
        return changed, skipped

    def _filtered(self, options: dict[str, Any]) -> QuerySet[Job]:
        selection = Job.objects.using(get_settings().database).filter(
            status__in=options["status"] or list(self.changes_from)
        )
        if options["task"]:
            selection = selection.filter(task__in=options["task"])
        if options["tag"]:
            selection = selection.filter(tag__in=options["tag"])
        if options["older_than"] is not None:
            selection = selection.filter(created_at__lt=timezone.now() - timedelta(seconds=options["older_than"]))
        return selection

    def _check_ids(self, ids: list[int], batch_size: int) -> tuple[list[int], list[tuple[int, str]]]:
        """Split ``ids`` into those the operation applies to and the others, with why."""
        statuses: dict[int, str] = {}
        jobs = Job.objects.using(get_settings().database)
        for chunk in _chunks(ids, batch_size):
            statuses.update(jobs.filter(pk__in=chunk).values_list("pk", "status"))
        eligible, refused = [], []
        for job_id in ids:
            status = statuses.get(job_id)
            if status is None:
                refused.append((job_id, "no such job"))
            elif status in self.changes_from:
                eligible.append(job_id)
            else:
                refused.append((job_id, self.refusal(status)))
        return eligible, refused

    def apply(self, jobs: QuerySet[Job], batch_size: int) -> BulkResult:
        """The bulk operation (:func:`~django_kinetik.bulk.cancel_all` or ``retry_all``)."""
        raise NotImplementedError

    def refusal(self, status: str) -> str:
        """Why a job in ``status`` is left alone."""
        raise NotImplementedError

    def _report(
        self, changed: int, skipped: int, refused: Sequence[tuple[int, str]], *, dry_run: bool, as_json: bool
    ) -> None:
        if as_json:
            write_json(
                self.stdout,
                {
                    "action": self.verb,
                    "dry_run": dry_run,
                    "changed": changed,
                    "changed_meanwhile": skipped,
                    "not_changed": [{"id": job_id, "reason": reason} for job_id, reason in refused],
                },
            )
            return
        if dry_run:
            self.stdout.write(f"Would {self.verb} {changed} job(s) (dry run: nothing changed).")
        else:
            self.stdout.write(f"{self.past.capitalize()} {changed} job(s).")
        if skipped:
            self.stdout.write(f"{skipped} job(s) changed status meanwhile and were left alone.")
        if refused:
            self.stdout.write(f"{'Would not' if dry_run else 'Could not'} {self.verb} {len(refused)} job(s):")
            self.stdout.write(render_table(["ID", "REASON"], [[job_id, reason] for job_id, reason in refused]))


def _chunks(values: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]
