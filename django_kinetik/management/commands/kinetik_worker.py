from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import CommandError, CommandParser

from django_kinetik.feed import lifetime
from django_kinetik.management.arguments import duration_argument, duration_text, text_argument, whole_number
from django_kinetik.management.output import KinetikCommand
from django_kinetik.tasks_backend.logfilter import leave_out_repeated_lines
from django_kinetik.values.options import parse_tag
from django_kinetik.worker import Worker
from django_kinetik.worker.loop import DEFAULT_CONCURRENCY
from django_kinetik.worker.memory import parse_memory
from django_kinetik.worker.serving import check_startable
from django_kinetik.worker.supervisor import Supervisor, child_command

#: job threads per process, at most: each may hold a database connection
MAX_CONCURRENCY = 1000
#: worker processes under one supervisor, at most
MAX_PROCESSES = 1000


def _tag(value: str) -> str:
    # A tag no job can have would leave its worker idle for ever: refused, as create() refuses it.
    try:
        return parse_tag(text_argument(value))
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _memory(value: str) -> int:
    hint = "use for example 512MB or 2GB"
    try:
        size = parse_memory(value)
    except OverflowError:  # "1e400MB"
        raise argparse.ArgumentTypeError(f"memory size {value!r} is too large; {hint}") from None
    except ValueError as error:
        # parse_memory's own messages say what is wrong; Python's ("nan": cannot convert float NaN) do not.
        own = str(error).startswith("memory size")
        raise argparse.ArgumentTypeError(
            str(error) if own else f"memory size {value!r} is not understood; {hint}"
        ) from None
    if size < 1024:
        raise argparse.ArgumentTypeError(f"memory size {value!r} is less than 1K; {hint}")
    return size


class Command(KinetikCommand):
    help = (
        "Run jobs. Tags are served in the order given: after every job the worker goes "
        "back to the first tag with work.\n\n"
        "Threads (--concurrency) cannot be killed: a job that passes its timeout is marked\n"
        "'timeout' and its thread is abandoned. With --processes, the process running it is\n"
        "killed and replaced (use --concurrency 1 with it for a hard kill that touches\n"
        "no other job)."
    )
    examples = """
  manage.py kinetik_worker                      # every registered tag
  manage.py kinetik_worker messaging db.aggregation --concurrency 8
  manage.py kinetik_worker --processes 4 --max-jobs 1000 --max-memory 512MB
  KINETIK_QUEUE=messaging manage.py kinetik_worker --burst   # drain and exit
"""

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "tags",
            nargs="*",
            metavar="TAG",
            type=_tag,
            help="tags to serve, highest priority first (default: $KINETIK_QUEUE, else every registered tag)",
        )
        parser.add_argument(
            "-c",
            "--concurrency",
            type=whole_number(1, maximum=MAX_CONCURRENCY),
            default=DEFAULT_CONCURRENCY,
            help=f"jobs run at once per process, in threads (default {DEFAULT_CONCURRENCY}, at most {MAX_CONCURRENCY})",
        )
        parser.add_argument(
            "-p",
            "--processes",
            type=whole_number(0, maximum=MAX_PROCESSES),
            default=0,
            help=f"run this many worker processes under one supervisor (at most {MAX_PROCESSES})",
        )
        parser.add_argument(
            "-i",
            "--interval",
            type=duration_argument,
            default=None,
            help='wait when every tag is empty: seconds, or e.g. "500ms" (default KINETIK["INTERVAL"])',
        )
        parser.add_argument(
            "--shutdown-timeout",
            type=duration_argument,
            default=None,
            help='on SIGTERM, seconds running jobs get to finish, or e.g. "2m" (default KINETIK["SHUTDOWN_TIMEOUT"])',
        )
        parser.add_argument(
            "--max-jobs",
            type=whole_number(1),
            default=None,
            help="stop after this many jobs (with --processes: replace the process)",
        )
        parser.add_argument(
            "--max-memory",
            type=_memory,
            default=None,
            help='stop when resident memory passes this, e.g. "512MB" (with --processes: replace it)',
        )
        parser.add_argument("--burst", action="store_true", help="run what is runnable now, then exit")
        parser.add_argument("--supervised", action="store_true", help=argparse.SUPPRESS)

    def handle(self, *args: Any, **options: Any) -> None:
        _configure_logging(options["verbosity"])
        try:
            check_startable(options["tags"])
        except ImproperlyConfigured as error:
            raise CommandError(str(error)) from None
        if options["processes"]:
            if any(tag.startswith("-") for tag in options["tags"]):
                # Its worker processes would read such a tag as an option, and fail at every restart.
                raise CommandError("--processes cannot serve a tag that begins with '-'; rename the tag")
            status = Supervisor(
                options["processes"], child_command(_child_arguments(options)), burst=options["burst"]
            ).run()
        else:
            try:
                worker = Worker(
                    options["tags"] or None,
                    concurrency=options["concurrency"],
                    interval=options["interval"],
                    burst=options["burst"],
                    max_jobs=options["max_jobs"],
                    max_memory=options["max_memory"],
                    shutdown_timeout=options["shutdown_timeout"],
                    supervised=options["supervised"],
                )
            except ValueError as error:
                raise CommandError(str(error)) from None
            lifetime.keep_idle_connections()  # this process is a worker: the feed is in constant use
            try:
                status = worker.run()
            except ImproperlyConfigured as error:
                # No tasks, no tags: the message says what to do; a traceback would only hide it.
                raise CommandError(str(error)) from None
            if worker.code_still_running:
                # Jobs put back in the queue (or timed out) still run in threads:
                # end the process now, before another worker starts them again.
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(status)
        if status:
            sys.exit(status)


def _child_arguments(options: dict[str, Any]) -> list[str]:
    arguments = [*options["tags"], "--concurrency", str(options["concurrency"]), "-v", str(options["verbosity"])]
    if options["interval"] is not None:
        arguments += ["--interval", duration_text(options["interval"])]
    if options["shutdown_timeout"] is not None:
        arguments += ["--shutdown-timeout", duration_text(options["shutdown_timeout"])]
    if options["max_jobs"] is not None:
        arguments += ["--max-jobs", str(options["max_jobs"])]
    if options["max_memory"] is not None:
        arguments += ["--max-memory", f"{options['max_memory'] / 1024!r}K"]
    if options["burst"]:
        arguments.append("--burst")
    return arguments


def _configure_logging(verbosity: int) -> None:
    """Show the worker's log on stderr unless the project configured logging for it."""
    leave_out_repeated_lines()  # kinetik's line about a django.tasks job is enough
    logger = logging.getLogger("django_kinetik")
    if logger.handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s [%(process)d] %(message)s"))
    logger.addHandler(handler)
    logger.setLevel({0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG))
