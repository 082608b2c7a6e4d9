from __future__ import annotations

import argparse
import time
from typing import Any

from django.core.management.base import CommandParser
from django.utils import timezone

from django_kinetik.jobs import stats
from django_kinetik.management.arguments import duration_argument, positive_int
from django_kinetik.management.output import KinetikCommand, add_format_argument, local_time, write_json
from django_kinetik.management.tables import render_table
from django_kinetik.models import Status

#: home the cursor and clear the screen, so a watched table redraws in place
_CLEAR = "\033[H\033[2J"


class Command(KinetikCommand):
    help = "Show how many jobs each task (or tag) has in each status (Kinetik's `jobs`)."
    examples = """
  manage.py kinetik_jobs
  manage.py kinetik_jobs --by tag
  manage.py kinetik_jobs --watch            # redraw every 2s until Ctrl-C
  manage.py kinetik_jobs --watch 10 --by tag
  manage.py kinetik_jobs --format json      # the numbers of kinetik.stats()
"""

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--by", choices=("task", "tag"), default="task", help="one row per task (default) or tag")
        parser.add_argument(
            "--watch",
            nargs="?",
            type=_refresh_every,
            const=2.0,
            default=None,
            metavar="SECONDS",
            help="refresh every SECONDS (default 2) until Ctrl-C; piped, prints one table per refresh",
        )
        # For tests and scripts: stop after this many refreshes.
        parser.add_argument("--iterations", type=positive_int, default=None, help=argparse.SUPPRESS)
        add_format_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        if options["watch"] is None:
            self._show(options, watching=False)
            return
        redraw = self.stdout.isatty() and options["format"] == "table"
        shown = 0
        try:
            while True:
                if redraw:
                    self.stdout.write(_CLEAR, ending="")
                self._show(options, watching=True)
                self.stdout.flush()
                shown += 1
                if options["iterations"] is not None and shown >= options["iterations"]:
                    return
                time.sleep(options["watch"])
        except KeyboardInterrupt:
            # Ctrl-C is how a watch ends: no traceback, and the prompt on a fresh line.
            self.stdout.write("")

    def _show(self, options: dict[str, Any], *, watching: bool) -> None:
        counts = stats()
        if options["format"] == "json":
            # One document per line while watching (JSON lines), so each refresh parses alone.
            data = {**counts, "at": timezone.now()} if watching else counts
            write_json(self.stdout, data, compact=watching)
            return
        if watching:
            self.stdout.write(f"{local_time(timezone.now())}  every {options['watch']:g}s, Ctrl-C to stop\n")
        statuses = list(Status.values)
        groups = counts["tasks"] if options["by"] == "task" else counts["tags"]
        rows = [
            [name, *(by_status.get(status, 0) for status in statuses), sum(by_status.values())]
            for name, by_status in sorted(groups.items())
        ]
        rows.append(["(all)", *(counts["status"][status] for status in statuses), counts["total"]])
        heading = "TASK" if options["by"] == "task" else "TAG"
        self.stdout.write(render_table([heading, *(s.upper() for s in statuses), "TOTAL"], rows))
        if watching and not self.stdout.isatty():
            self.stdout.write("")


def _refresh_every(value: str) -> float:
    """--watch's interval: a duration above 0 (0 would query the database in a tight loop)."""
    seconds = duration_argument(value)
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"{value!r} would redraw without a pause; give seconds above 0, e.g. 2")
    return seconds
