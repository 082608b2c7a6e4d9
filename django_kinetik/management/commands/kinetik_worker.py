from __future__ import annotations

import logging
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_kinetik.durations import parse_duration
from django_kinetik.worker import Worker


def _duration(value: str) -> float:
    try:
        return parse_duration(value)
    except (TypeError, ValueError) as error:
        raise CommandError(str(error)) from None


class Command(BaseCommand):
    help = (
        "Run jobs. Tags are served in the order given: after every job the worker goes "
        "back to the first tag with work.\n\n"
        "Examples:\n"
        "  manage.py kinetik_worker                      # every registered tag\n"
        "  manage.py kinetik_worker messaging db.aggregation --concurrency 8\n"
        "  KINETIK_QUEUE=messaging manage.py kinetik_worker --burst   # drain and exit"
    )

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        from argparse import RawDescriptionHelpFormatter

        return super().create_parser(prog_name, subcommand, formatter_class=RawDescriptionHelpFormatter)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "tags",
            nargs="*",
            metavar="TAG",
            help="tags to serve, highest priority first (default: $KINETIK_QUEUE, else every registered tag)",
        )
        parser.add_argument("-c", "--concurrency", type=int, default=1, help="jobs run at once, in threads (default 1)")
        parser.add_argument(
            "-i",
            "--interval",
            type=_duration,
            default=None,
            help='how long to wait when every tag is empty, e.g. "500ms" (default KINETIK["INTERVAL"], 1s)',
        )
        parser.add_argument(
            "--shutdown-timeout",
            type=_duration,
            default=None,
            help='on SIGTERM, how long running jobs get to finish (default KINETIK["SHUTDOWN_TIMEOUT"], 30s)',
        )
        parser.add_argument("--max-jobs", type=int, default=None, help="stop after running this many jobs")
        parser.add_argument("--burst", action="store_true", help="run what is runnable now, then exit")

    def handle(self, *args: Any, **options: Any) -> None:
        _configure_logging(options["verbosity"])
        try:
            worker = Worker(
                options["tags"] or None,
                concurrency=options["concurrency"],
                interval=options["interval"],
                burst=options["burst"],
                max_jobs=options["max_jobs"],
                shutdown_timeout=options["shutdown_timeout"],
            )
        except ValueError as error:
            raise CommandError(str(error)) from None
        status = worker.run()
        if status:
            sys.exit(status)


def _configure_logging(verbosity: int) -> None:
    """Show the worker's log on stderr unless the project configured logging for it."""
    logger = logging.getLogger("django_kinetik")
    if logger.handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(handler)
    logger.setLevel({0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG))
