"""What the management commands share: help with examples, JSON, ages and a progress bar.

Tables come from :mod:`django_kinetik.management.tables`, argument types from
:mod:`django_kinetik.management.arguments`. Everything here
writes through the command's ``OutputWrapper`` so ``call_command(stdout=...)``
captures it, and decorates output (carriage returns, ANSI) only when the
stream is a terminal: piped into a file or a log collector, output stays plain.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser, DjangoHelpFormatter, OutputWrapper
from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone

FORMATS = ("table", "json")


class _HelpFormatter(DjangoHelpFormatter):
    """Django's ordering of options (its own last); prose wrapped, examples kept as written.

    A paragraph with indented lines (command lines, config snippets) is printed
    line for line, like ``RawDescriptionHelpFormatter`` would; other paragraphs
    are wrapped to the terminal as usual.
    """

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        paragraphs = []
        for paragraph in text.split("\n\n"):
            lines = paragraph.splitlines()
            if any(line.startswith(" ") for line in lines):
                paragraphs.append("\n".join(indent + line for line in lines))
            else:
                paragraphs.append(super()._fill_text(paragraph, width, indent))
        return "\n\n".join(paragraphs)


class KinetikCommand(BaseCommand):
    """A command whose ``--help`` ends with ``examples``, laid out as written.

    Its bad arguments are refused like any ``CommandError``: one line on stderr,
    exit status 1 (see :mod:`.arguments`).
    """

    #: command lines shown under "Examples:" in --help
    examples: str = ""

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        if self.examples:
            kwargs.setdefault("epilog", "Examples:\n" + self.examples.strip("\n"))
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        # An argument error raises CommandError("Error: ...") from the command line too, as it
        # does from call_command(), instead of printing the usage and exiting with status 2.
        parser.called_from_command_line = False
        return parser

    def run_from_argv(self, argv: list[str]) -> None:
        try:
            super().run_from_argv(argv)
        except CommandError as error:
            # Django prints the CommandErrors of execute() itself and re-raises them
            # only for --traceback; so this is an argument error, raised while parsing.
            if "--traceback" in argv:
                raise
            # The message without call_command()'s "Error: ", as Django prints a CommandError.
            self.stderr.write(f"{type(error).__name__}: {str(error).removeprefix('Error: ')}")
            sys.exit(error.returncode)


def add_format_argument(parser: CommandParser) -> None:
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="table",
        help="'table' for people (default), 'json' for scripts",
    )


def write_json(stream: OutputWrapper, data: Any, *, compact: bool = False) -> None:
    """``data`` as JSON; datetimes in ISO 8601. ``compact`` gives one line (JSON lines)."""
    if compact:
        stream.write(json.dumps(data, cls=DjangoJSONEncoder, separators=(",", ":")))
    else:
        stream.write(json.dumps(data, cls=DjangoJSONEncoder, indent=2))


def age(moment: datetime | None, now: datetime | None = None) -> str:
    """How long ago ``moment`` was, short: ``"4s"``, ``"12m"``, ``"3h"``, ``"2d"``."""
    if moment is None:
        return "-"
    seconds = max(0.0, ((now or timezone.now()) - moment).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def local_time(moment: datetime | None) -> str:
    """A timestamp in the project's time zone, to the second."""
    if moment is None:
        return "-"
    if timezone.is_aware(moment):
        moment = timezone.localtime(moment)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


class Progress:
    """A one-line progress bar on a terminal; silent anywhere else.

    Long deletes and bulk changes show it on stderr, so stdout keeps only the
    result a script would parse.
    """

    width = 30

    def __init__(self, stream: OutputWrapper, total: int, label: str) -> None:
        self.stream = stream
        self.total = total
        self.label = label
        self.done = 0
        self.enabled = stream.isatty()

    def advance(self, count: int) -> None:
        self.done += count
        if not self.enabled:
            return
        share = min(1.0, self.done / self.total) if self.total else 1.0
        filled = int(share * self.width)
        bar = "#" * filled + "-" * (self.width - filled)
        self._write(f"\r{self.label} [{bar}] {share:4.0%} {self.done}/{self.total}")

    def finish(self) -> None:
        if self.enabled and self.done:
            self._write("\n")

    def _write(self, text: str) -> None:
        # No colour: Django styles stderr as errors, and this is not one.
        self.stream.write(text, style_func=_plain, ending="")
        self.stream.flush()


def _plain(text: str) -> str:
    return text
