"""A job request in JSON, turned into :func:`django_kinetik.create`.

``{"task": "send email", "data": {...}, "delay": "30s", "priority": "high",
"tag": "mail", "unique_key": "...", "after": [12, 13], "retries": 3, "timeout": "1m"}``: the
fields are ``create``'s arguments, plus ``run_at`` (an ISO-8601 time, as an
alternative to ``delay``). Values go through the same parsers as in Python,
so an error reads the same wherever it was made.
"""

from __future__ import annotations

from typing import Any

from django.utils.dateparse import parse_datetime

from .. import jobs
from ..models import Job
from ..values.options import RUN_OPTION_NAMES

#: what a job request may hold besides the run options (``retries``, ``timeout``...)
FIELDS = ("task", "data", "delay", "run_at", "priority", "tag", "unique_key", "limit_key", "after")


def known_fields() -> tuple[str, ...]:
    return (*FIELDS, *RUN_OPTION_NAMES)


def create_from_json(item: Any) -> Job:
    """Create the job ``item`` describes.

    Raises ``TypeError``/``ValueError`` for a malformed request and
    :class:`~django_kinetik.exceptions.UnknownTask` for a task this process
    does not know (give ``tag`` to queue it for workers that do); nothing is
    written then.
    """
    if not isinstance(item, dict):
        raise TypeError(f'a job must be a JSON object such as {{"task": "..."}}, not {_json_type(item)}')
    unknown = sorted(set(item) - set(known_fields()))
    if unknown:
        # repr(): a client's field name may hold anything, even text JSON cannot send back.
        raise TypeError(f"unknown field(s) {', '.join(map(repr, unknown))}; a job may have {', '.join(known_fields())}")
    task = item.get("task")
    if not isinstance(task, str) or not task:
        raise TypeError('"task" is required: the name of the task to run, as a string')
    # Everything else (lengths, NUL, nesting, size, durations) is create()'s own check.
    options = {name: item[name] for name in RUN_OPTION_NAMES if name in item}
    return jobs.create(
        task,
        item.get("data"),
        delay=_delay(item),
        priority=item.get("priority"),
        tag=item.get("tag"),
        unique_key=item.get("unique_key"),
        limit_key=item.get("limit_key"),
        after=item.get("after"),
        **options,
    )


def _delay(item: dict[str, Any]) -> Any:
    if "run_at" not in item or item["run_at"] is None:
        return item.get("delay")
    if item.get("delay") is not None:
        raise ValueError('give "delay" or "run_at", not both')
    value = item["run_at"]
    try:
        when = parse_datetime(value) if isinstance(value, str) else None
    except ValueError:  # well-formed, but no such time (month 13)
        when = None
    if when is None:
        raise ValueError(f'"run_at" must be an ISO-8601 time such as "2030-01-31T09:00:00Z", not {value!r}')
    return when


def _json_type(value: Any) -> str:
    names = {list: "a list", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)
