from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from django_kinetik.durations import format_seconds
from django_kinetik.management.tables import render_table
from django_kinetik.registry import registry


class Command(BaseCommand):
    help = "List the registered tasks with their tag, description and effective options."

    def handle(self, *args: Any, **options: Any) -> None:
        rows = []
        for task in sorted(registry, key=lambda t: (t.effective_options().tag, t.name)):
            opts = task.effective_options()
            retry = f"{opts.retries} ({opts.backoff} {format_seconds(opts.retry_delay)})" if opts.retries else "0"
            rows.append([task.name, opts.tag, opts.priority, format_seconds(opts.timeout), retry, task.desc])
        if not rows:
            self.stdout.write("No tasks are registered. Define them with @kinetik.task in an app's tasks.py.")
            return
        self.stdout.write(render_table(["TASK", "TAG", "PRIORITY", "TIMEOUT", "RETRIES", "DESCRIPTION"], rows))
