from __future__ import annotations

import argparse
import json
import sys
from datetime import timedelta
from typing import Any

from django.core.management.base import CommandError, CommandParser

from django_kinetik.api.serialize import job_json
from django_kinetik.exceptions import UnknownTask
from django_kinetik.jobs import create
from django_kinetik.management.arguments import (
    duration_argument,
    job_id_argument,
    refusing,
    text_argument,
    text_problem,
)
from django_kinetik.management.output import KinetikCommand, add_format_argument, write_json
from django_kinetik.values.options import RUN_OPTION_NAMES

#: the per-job options that are durations (seconds when bare, as every option on the command line)
DURATION_OPTIONS = ("timeout", "retry_delay", "retry_max_delay")
#: create()'s own arguments, which --option cannot set: the command's option for each, if it has one
_NOT_OPTIONS = {
    "task": "TASK",
    "data": "JSON_DATA",
    "delay": "--delay",
    "priority": "--priority",
    "tag": "--tag",
    "unique_key": "--unique-key",
    "limit_key": "--limit-key",
    "after": "--after",
    "task_backend": None,
}


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
        parser.add_argument("task", metavar="TASK", type=text_argument, help="the task's name (see kinetik_tasks)")
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
            type=text_argument,
            default=None,
            help="a level (low, normal, medium, high, critical) or an integer from -100 to 100; larger runs first",
        )
        parser.add_argument(
            "--tag", type=text_argument, default=None, help="queue the job under this tag instead of the task's own"
        )
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
            "--unique-key",
            type=text_argument,
            default=None,
            help="if a live job has this key, print its id instead of creating one",
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
            "--limit-key",
            type=text_argument,
            default=None,
            help="count the job under this key for the task's concurrency and rate limits",
        )
        add_format_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        data = _read_data(options["data"])
        run_options = dict(_read_option(text) for text in options["option"])
        # create() checks everything before it writes, so a refusal here has written nothing.
        with refusing():
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
        if options["format"] == "json":
            # The API's shape (GET api/jobs/<id>), so scripts can use either.
            write_json(self.stdout, job_json(job))
        else:
            self.stdout.write(str(job.pk))


def _read_data(text: str | None) -> Any:
    if text is None:
        return None
    what = "JSON_DATA"
    if text == "-":
        text, what = _read_stdin(), "JSON_DATA from stdin"
    problem = text_problem(text)
    if problem is not None:
        raise CommandError(f"{what} {problem}")
    with refusing(what):  # too deep for the parser, or a number of more digits than Python reads
        try:
            return json.loads(text)
        except json.JSONDecodeError as error:
            raise CommandError(
                f"{what} is not valid JSON ({error.msg} at column {error.colno}). Give an object in single "
                f'quotes, e.g. \'{{"to": "ada@example.com"}}\'.'
            ) from None


def _read_stdin() -> str:
    """All of stdin, as UTF-8 (a byte order mark is skipped); bytes that are not UTF-8 are refused."""
    if sys.stdin is None:
        raise CommandError("JSON_DATA '-' reads the data from stdin, but there is no stdin")
    raw = sys.stdin.buffer.read() if hasattr(sys.stdin, "buffer") else sys.stdin.read()
    if isinstance(raw, str):  # a text stream put in place of stdin (tests, embedding code)
        return raw
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise CommandError(
            f"JSON_DATA from stdin is not UTF-8 text (byte {raw[error.start]:#04x} at position {error.start})"
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
    problem = text_problem(text)
    if problem is not None:
        raise CommandError(f"--option {text!r} {problem}")
    if name in _NOT_OPTIONS and name not in RUN_OPTION_NAMES:
        flag = _NOT_OPTIONS[name]
        instead = f"give it as {flag}" if flag else f"per-job options are {', '.join(RUN_OPTION_NAMES)}"
        raise CommandError(f"--option {name}: {name!r} is not an option of the job; {instead}")
    if name in DURATION_OPTIONS and value.strip() not in ("null", "None"):
        # On the command line a bare number is seconds, for every option: timeout=30 is 30s.
        with refusing(f"--option {name}"):
            try:
                return name, timedelta(seconds=duration_argument(value))
            except argparse.ArgumentTypeError as error:
                raise ValueError(str(error)) from None
    with refusing(f"--option {name}"):  # too deep for the parser
        try:
            return name, json.loads(value)
        except ValueError:  # not JSON (or a number of more digits than Python reads): the text itself
            return name, value


def _priority(text: str | None) -> int | str | None:
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        return text
