"""The commands' argument types, and how bad input is refused: one line, exit status 1, nothing written.

Every value is checked where argparse reads it, by the types below, so a
command never starts work with a value it cannot use: argparse names the
option ("argument --older-than: ...") and Django raises the refusal as a
``CommandError``. What only the Python API can judge (a job's data, a task
name's length) is checked by :func:`django_kinetik.create`, which raises
``TypeError``/``ValueError`` before writing; :func:`refusing` turns those,
and what Python raises for input it cannot represent (``OverflowError``,
``RecursionError``, ``UnicodeError``), into a ``CommandError`` too.

A ``CommandError`` from ``handle()`` is one line on a terminal; argparse's own
errors would be its usage text and exit status 2, so
:class:`~django_kinetik.management.output.KinetikCommand` prints those as one
line with status 1 as well.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from django.core.management.base import CommandError

from ..models import MAX_JOB_ID
from ..values.durations import MAX_DURATION, parse_duration
from ..values.jsondata import MAX_DEPTH
from ..values.text import unstorable

#: jobs changed or deleted per transaction, at most: a batch is meant to be short
MAX_BATCH_SIZE = 10_000

#: what bad input raises in the Python API and in Python's own parsers
INPUT_ERRORS = (TypeError, ValueError, OverflowError, RecursionError)


def one_line(text: str) -> str:
    """``text`` on one line: a refusal is one line, whatever the message it reports."""
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip()) or "invalid input"


@contextmanager
def refusing(what: str = "") -> Iterator[None]:
    """Turn the errors of bad input raised inside into a one-line ``CommandError``, prefixed ``what: ``.

    ``UnicodeError`` is a ``ValueError``, so undecodable text is covered too.
    Only wrap code that reads input and validates before writing (such as
    :func:`~django_kinetik.create`): nothing may have been written when it refuses.
    """
    try:
        yield
    except INPUT_ERRORS as error:
        if isinstance(error, RecursionError):
            # From a parser, before any check of depth could run.
            raise CommandError(
                f"{what or 'the input'} is nested too deeply; JSON may nest at most {MAX_DEPTH} levels here"
            ) from None
        message = one_line(str(error))
        raise CommandError(f"{what}: {message}" if what else message) from None


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be sent to every database (NUL, a lone surrogate, bytes not UTF-8), or None."""
    problem = unstorable(text)
    if problem is None:
        return None
    # On a POSIX command line, bytes that are not UTF-8 reach Python as U+DC80..U+DCFF.
    for position, char in enumerate(text):
        if "\udc80" <= char <= "\udcff":
            return f"is not UTF-8 text (byte {ord(char) - 0xDC00:#04x} at position {position})"
    return problem


def text_argument(value: str) -> str:
    """An argparse type for names and keys (tags, tasks, keys): text every database can compare.

    A name no job can have (unknown, too long) is not refused here: as a filter
    it matches nothing, and where a job is created, ``create()`` judges it.
    """
    problem = text_problem(value)
    if problem is not None:
        raise argparse.ArgumentTypeError(f"{value!r} {problem}")
    return value


def duration_argument(value: str) -> float:
    """An argparse type for durations on the command line: ``30s``, ``7d``, ``1h30m``, or ``5`` (seconds).

    Unlike :func:`parse_duration`, a bare number is seconds, not milliseconds
    (the Python API's convention, kept for Kinetik compatibility), because
    ``--watch 5`` or ``--older-than 7`` meaning milliseconds would surprise
    anyone. Either way, at most :data:`~django_kinetik.values.durations.MAX_DURATION`.
    """
    try:
        seconds = float(value)
    except ValueError:
        return _parsed(parse_duration, value)
    if not math.isfinite(seconds) or seconds < 0:
        raise argparse.ArgumentTypeError(f"{value!r} is not a duration; give a number of seconds or e.g. 30s, 5m, 7d")
    if seconds > MAX_DURATION.total_seconds():
        raise argparse.ArgumentTypeError(
            f"{value!r} seconds is longer than {MAX_DURATION.days} days, the most accepted; check its unit"
        )
    return seconds


def _parsed(parse: Callable[[str], float], value: str) -> float:
    try:
        return parse(value)
    except (TypeError, ValueError, OverflowError) as error:
        raise argparse.ArgumentTypeError(one_line(str(error))) from None


def whole_number(minimum: int, what: str = "a whole number", *, maximum: int | None = None) -> Callable[[str], int]:
    """An argparse type for an integer from ``minimum`` to ``maximum``; ``what`` names it in errors."""

    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:  # also a number of more digits than Python converts
            raise argparse.ArgumentTypeError(f"{_head(value)} is not {what}") from None
        if number < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, not {_number(number)}")
        if maximum is not None and number > maximum:
            raise argparse.ArgumentTypeError(f"must be at most {maximum:,}, not {_number(number)}")
        return number

    return parse


#: counts that must be at least 1
positive_int = whole_number(1)
#: jobs per transaction
batch_size = whole_number(1, maximum=MAX_BATCH_SIZE)
#: job ids
job_id_argument = whole_number(1, "a job id (a whole number)", maximum=MAX_JOB_ID)


def duration_text(seconds: float) -> str:
    """``seconds`` as text :func:`parse_duration` reads back, to the microsecond (for a worker's children).

    Not :func:`~django_kinetik.values.durations.format_seconds`, whose short
    forms (``"1.23457e+06s"``) are for people and do not parse.
    """
    return f"{seconds:.6f}s"


def _number(number: int) -> str:
    digits = str(abs(number))
    return str(number) if len(digits) <= 40 else f"a number of {len(digits)} digits"


def _head(value: str) -> str:
    return repr(value) if len(value) <= 40 else f"{value[:40]!r}... ({len(value)} characters)"
