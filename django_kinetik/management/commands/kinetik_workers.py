from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.core.management.base import CommandParser
from django.db.models import Count
from django.utils import timezone

from django_kinetik.conf import get_settings
from django_kinetik.management.arguments import text_argument
from django_kinetik.management.output import KinetikCommand, add_format_argument, age, local_time, write_json
from django_kinetik.management.tables import render_table
from django_kinetik.models import Job, Worker
from django_kinetik.values.durations import format_seconds

#: states of a worker that still runs (a stopping one finishes its jobs)
RUNNING_STATES = (Worker.State.ONLINE, Worker.State.STOPPING)


class Command(KinetikCommand):
    help = (
        "List the live workers: online or stopping, with a heartbeat within the lease "
        '(KINETIK["LEASE"]). --all adds stopped and lost ones.'
    )
    examples = """
  manage.py kinetik_workers
  manage.py kinetik_workers --tag mail       # who serves the mail tag?
  manage.py kinetik_workers --all
  manage.py kinetik_workers --format json
"""

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--all", action="store_true", help="include offline and lost workers")
        parser.add_argument("--tag", type=text_argument, help="only workers serving this tag")
        add_format_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        settings = get_settings()
        now = timezone.now()
        since = now - timedelta(seconds=settings.lease)
        workers = Worker.objects.using(settings.database).order_by("host", "pid", "pk")
        if not options["all"]:
            workers = workers.filter(state__in=RUNNING_STATES, last_heartbeat__gte=since)
        chosen = list(workers)
        if options["tag"]:
            # Tags are a JSON list; filtered here as JSON containment is not portable (SQLite).
            chosen = [worker for worker in chosen if options["tag"] in worker.tags]
        running = dict(
            Job.objects.using(settings.database)
            .active()
            .filter(worker_id__in=[worker.pk for worker in chosen])
            .order_by()
            .values_list("worker_id")
            .annotate(count=Count("id"))
        )
        if options["format"] == "json":
            write_json(self.stdout, [_as_json(worker, running.get(worker.pk, 0), now, since) for worker in chosen])
            return
        if not chosen:
            self.stdout.write(_none_message(options["all"], options["tag"], settings.lease))
            return
        rows = [
            [
                worker.name,
                worker.host,
                worker.pid,
                ",".join(worker.tags),
                worker.concurrency,
                _state(worker, since),
                local_time(worker.started_at),
                age(worker.last_heartbeat, now) + " ago",
                worker.jobs_done,
                running.get(worker.pk, 0),
                worker.stopping_jobs,
                worker.runaway_threads,
            ]
            for worker in chosen
        ]
        headers = [
            "NAME", "HOST", "PID", "TAGS", "THREADS", "STATE", "STARTED", "HEARTBEAT", "DONE", "RUNNING",
            "STOPPING", "RUNAWAY",
        ]  # fmt: skip
        self.stdout.write(render_table(headers, rows))


def _none_message(include_stopped: bool, tag: str | None, lease: float) -> str:
    serving = f" serving {tag!r}" if tag else ""
    if include_stopped:
        return f"No worker{serving} has registered. Start one with manage.py kinetik_worker."
    return (
        f"No live worker{serving} (none online or stopping with a heartbeat within {format_seconds(lease)}). "
        "Start one with manage.py kinetik_worker; --all lists stopped ones."
    )


def is_live(worker: Worker, since: datetime) -> bool:
    return worker.state in RUNNING_STATES and worker.last_heartbeat >= since


def _state(worker: Worker, since: datetime) -> str:
    """The recorded state, flagged when a running worker has gone quiet (not yet marked lost)."""
    if worker.state in RUNNING_STATES and not is_live(worker, since):
        return f"{worker.state} (silent)"
    return str(worker.state)


def _as_json(worker: Worker, running: int, now: datetime, since: datetime) -> dict[str, Any]:
    return {
        "name": worker.name,
        "host": worker.host,
        "pid": worker.pid,
        "tags": worker.tags,
        "concurrency": worker.concurrency,
        "state": worker.state,
        "live": is_live(worker, since),
        "started_at": worker.started_at,
        "stopped_at": worker.stopped_at,
        "last_heartbeat": worker.last_heartbeat,
        "heartbeat_age": round((now - worker.last_heartbeat).total_seconds(), 3),
        "jobs_done": worker.jobs_done,
        "running_jobs": running,
        "runaway_threads": worker.runaway_threads,
        "stopping_jobs": worker.stopping_jobs,
    }
