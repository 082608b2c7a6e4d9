from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from django_kinetik.durations import format_seconds
from django_kinetik.management.output import KinetikCommand, add_format_argument, write_json
from django_kinetik.management.tables import render_table
from django_kinetik.registry import Task, registry


class Command(KinetikCommand):
    help = "List the registered tasks with their tag, description and effective options."
    examples = """
  manage.py kinetik_tasks
  manage.py kinetik_tasks --format json
"""

    def add_arguments(self, parser: CommandParser) -> None:
        add_format_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        tasks = sorted(registry, key=lambda t: (t.effective_options().tag, t.name))
        if options["format"] == "json":
            write_json(self.stdout, [_as_json(task) for task in tasks])
            return
        rows = []
        for task in tasks:
            opts = task.effective_options()
            retry = f"{opts.retries} ({opts.backoff} {format_seconds(opts.retry_delay)})" if opts.retries else "0"
            rows.append([task.name, opts.tag, opts.priority, format_seconds(opts.timeout), retry, task.desc])
        if not rows:
            self.stdout.write("No tasks are registered. Define them with @kinetik.task in an app's tasks.py.")
            return
        self.stdout.write(render_table(["TASK", "TAG", "PRIORITY", "TIMEOUT", "RETRIES", "DESCRIPTION"], rows))


def _as_json(task: Task) -> dict[str, Any]:
    opts = task.effective_options()
    return {
        "name": task.name,
        "description": task.desc,
        "tag": opts.tag,
        "priority": opts.priority,
        "timeout_seconds": opts.timeout,
        "retries": opts.retries,
        "retry_delay_seconds": opts.retry_delay,
        "backoff": opts.backoff,
    }
