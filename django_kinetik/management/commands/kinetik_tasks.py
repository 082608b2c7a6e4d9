from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.core.management.base import CommandParser
from django.utils import timezone

from django_kinetik.conf import get_settings
from django_kinetik.management.output import KinetikCommand, add_format_argument, write_json
from django_kinetik.management.tables import render_table
from django_kinetik.models import Hold, Schedule
from django_kinetik.registry import Task, registry
from django_kinetik.values.durations import format_seconds
from django_kinetik.values.limits import describe_limit_by
from django_kinetik.values.schedules import Timing


class Command(KinetikCommand):
    help = "List the registered tasks with their tag, description, effective options, limits and schedule (UTC)."
    examples = """
  manage.py kinetik_tasks
  manage.py kinetik_tasks --format json
"""

    def add_arguments(self, parser: CommandParser) -> None:
        add_format_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        tasks = sorted(registry, key=lambda t: (t.effective_options().tag, t.name))
        next_runs = _next_runs(tasks)
        holds = _holds()
        if options["format"] == "json":
            write_json(
                self.stdout, [_as_json(task, next_runs.get(task.name), holds.get(task.name, [])) for task in tasks]
            )
            return
        rows = []
        for task in tasks:
            opts = task.effective_options()
            retry = f"{opts.retries} ({opts.backoff} {format_seconds(opts.retry_delay)})" if opts.retries else "0"
            timing = Timing.of(opts)
            next_run = next_runs.get(task.name)
            rows.append(
                [
                    task.name,
                    opts.tag,
                    opts.priority,
                    format_seconds(opts.timeout),
                    retry,
                    _describe_holds(holds.get(task.name, [])) or opts.limit.describe() or "-",
                    timing.describe() if timing else "-",
                    f"{next_run:%Y-%m-%d %H:%M:%S} UTC" if next_run else "-",
                    task.desc,
                ]
            )
        if not rows:
            self.stdout.write("No tasks are registered. Define them with @kinetik.task in an app's tasks.py.")
            return
        headers = [
            "TASK",
            "TAG",
            "PRIORITY",
            "TIMEOUT",
            "RETRIES",
            "LIMITS / HOLDS",
            "SCHEDULE",
            "NEXT RUN",
            "DESCRIPTION",
        ]
        self.stdout.write(render_table(headers, rows))


def _next_runs(tasks: list[Task]) -> dict[str, datetime]:
    """When each periodic task runs next: as the workers have it, or as its timing says."""
    timings = {task.name: timing for task in tasks if (timing := Timing.of(task.effective_options()))}
    if not timings:
        return {}
    rows = Schedule.objects.using(get_settings().database).in_bulk(list(timings))
    now = timezone.now()
    return {
        name: (
            rows[name].next_slot
            if name in rows and rows[name].schedule == timing.describe()
            else timing.next_after(now)
        ).astimezone(UTC)
        for name, timing in timings.items()
    }


def _holds() -> dict[str, list[Hold]]:
    """The holds in force (kinetik.RateLimited), by task."""
    holds: dict[str, list[Hold]] = {}
    for hold in Hold.objects.using(get_settings().database).filter(until__gt=timezone.now()).order_by("until"):
        holds.setdefault(hold.task, []).append(hold)
    return holds


def _describe_holds(holds: list[Hold]) -> str:
    if not holds:
        return ""
    until = f"until {max(hold.until for hold in holds).astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"
    if len(holds) == 1 and not holds[0].key:
        return f"held {until}"
    return f"{len(holds)} key(s) held, the last {until}"


def _as_json(task: Task, next_run: datetime | None, holds: list[Hold]) -> dict[str, Any]:
    opts = task.effective_options()
    timing = Timing.of(opts)
    return {
        "name": task.name,
        "description": task.desc,
        "tag": opts.tag,
        "priority": opts.priority,
        "timeout_seconds": opts.timeout,
        "retries": opts.retries,
        "retry_delay_seconds": opts.retry_delay,
        "backoff": opts.backoff,
        "concurrency": opts.concurrency,
        "rate_limit": str(opts.rate_limit) if opts.rate_limit else None,
        "limit_by": None if opts.limit_by is None else describe_limit_by(opts.limit_by),
        "schedule": timing.describe() if timing else None,
        "missed": opts.missed if timing else None,
        "next_run": next_run.isoformat() if next_run else None,
        "holds": [{"key": hold.key, "until": hold.until.isoformat(), "reason": hold.reason} for hold in holds],
    }
