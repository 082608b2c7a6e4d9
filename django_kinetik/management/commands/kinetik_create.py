from __future__ import annotations

import json
import sys
from datetime import timedelta
from typing import Any

from django.core.management.base import CommandError, CommandParser

from django_kinetik.api.serialize import job_json
from django_kinetik.exceptions import UnknownTask
from django_kinetik.jobs import create
from django_kinetik.management.output import (
    KinetikCommand,
    add_format_argument,
    duration_argument,
    job_id_argument,
    write_json,
)


class Command(KinetikCommand):
    help = (
        "Create one job from the shell and print its id. Everything is checked before "
        "anything is written: a bad argument creates nothing."
    )
    examples = """
  manage.py kinetik_create "send email" '{"to": "ada@example.com"}'
  manage.py kinetik_create report.build --delay 2h --priority high
  manage.py kinetik_create resize '{"image": 7}' --option retries=3 --option timeout=30s
  manage.py kinetik_create remote.task --tag gpu      # a task only the gpu workers define
  manage.py kinetik_create report.mail --after 41 --after 42   # once jobs 41 and 42 completed
  manage.py kinetik_create feed.import '{"customer_id": 7}' --limit-key customer-7
  echo '{"to": "ada@example.com"}' | manage.py kinetik_create "send email" -
  JOB=$(manage.py kinetik_create nightly.sync) && echo "created job $JOB"
"""

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("task", metavar="TASK", help="the task's name (see kinetik_tasks)")
        parser.add_argument(
            "data",
            metavar="JSON_DATA",
            nargs="?",
            default=None,
            help="the job's data, a JSON object (default {}); '-' reads it from stdin",
        )
        parser.add_argument(
            "--delay",
            type=duration_argument,
            default=None,
            help='run no sooner than this from now, e.g. "30s", "2h" (a bare number is seconds)',
        )
        parser.add_argument(
            "--priority",
            default=None,
            help="a level (low, normal, medium, high, critical) or an integer from -100 to 100; larger runs first",
        )
        parser.add_argument("--tag", default=None, help="queue the job under this tag instead of the task's own")
        parser.add_argument(
            "--option",
            action="append",
            default=[],
            metavar="NAME=VALUE",
            help=(
                "override one of the task's options for this job (repeatable), e.g. retries=3, timeout=30s; "
                "values are read as JSON when they parse, so a bare number is milliseconds as in the Python API"
            ),
        )
        parser.add_argument(
            "--unique-key", default=None, help="if a live job has this key, print its id instead of creating one"
        )
        parser.add_argument(
            "--after",
            action="append",
            type=job_id_argument,
            default=None,
            metavar="ID",
            help="run only once this job has completed (repeatable); cancelled if it fails, unless "
            "--option on_parent_failure=run",
        )
        parser.add_argument(
            "--limit-key", default=None, help="count the job under this key for the task's concurrency and rate limits"
        )
        add_format_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        data = _read_data(options["data"])
        run_options = dict(_read_option(text) for text in options["option"])
        try:
            job = create(
                options["task"],
                data,
                delay=None if options["delay"] is None else timedelta(seconds=options["delay"]),
                priority=_priority(options["priority"]),
                tag=options["tag"],
                unique_key=options["unique_key"],
                limit_key=options["limit_key"],
                after=options["after"],
                **run_options,
            )
        except UnknownTask as error:
            raise CommandError(
                f"No task named {error.name!r} is registered here (manage.py kinetik_tasks lists them). "
                f"Check the name, or pass --tag to create the job for workers that define the task."
            ) from None
        except (TypeError, ValueError) as error:
            raise CommandError(str(error)) from None
        if options["format"] == "json":
            # The API's shape (GET api/jobs/<id>), so scripts can use either.
            write_json(self.stdout, job_json(job))
        else:
            self.stdout.write(str(job.pk))


def _read_data(text: str | None) -> Any:
    if text is None:
        return None
    if text == "-":
        text = sys.stdin.read()
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise CommandError(
            f"JSON_DATA is not valid JSON ({error.msg} at column {error.colno}). Give an object in single "
            f'quotes, e.g. \'{{"to": "ada@example.com"}}\'.'
        ) from None


def _read_option(text: str) -> tuple[str, Any]:
    """``retries=3`` → ``("retries", 3)``: values are JSON when they parse as JSON, else text.

    So numbers and booleans arrive typed (``remove_on_complete=true``) while
    ``timeout=30s`` or ``backoff=exponential`` need no quoting.
    """
    name, equals, value = text.partition("=")
    name = name.strip()
    if not equals or not name:
        raise CommandError(f"--option {text!r} must be NAME=VALUE, e.g. --option retries=3")
    try:
        return name, json.loads(value)
    except json.JSONDecodeError:
        return name, value


def _priority(text: str | None) -> int | str | None:
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        return text
