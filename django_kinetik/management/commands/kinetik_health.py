from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from types import FrameType
from typing import Any

from django.core.management.base import CommandParser
from django.utils import timezone

from django_kinetik.backends import get_backend
from django_kinetik.conf import KinetikSettings, get_settings
from django_kinetik.fastpath.connection import redis_client
from django_kinetik.management.arguments import duration_argument, text_argument, whole_number
from django_kinetik.management.output import KinetikCommand, age
from django_kinetik.models import WAITING_FOR_CODE, Job, TagState, Worker
from django_kinetik.values.durations import format_seconds


class Unhealthy(Exception):
    """A check failed; the message is the reason printed after "unhealthy: "."""


class _OutOfTime(BaseException):
    # A BaseException, so the checks' ``except Exception`` cannot swallow it.
    pass


class Command(KinetikCommand):
    help = (
        'Check the queue and print one line, "ok: ..." (exit 0) or "unhealthy: <reason>" '
        "(exit 1, the first failing check): the database answers; Redis answers if "
        'KINETIK["REDIS"] is set; enough workers are live (heartbeat within the lease); '
        "no queued job has waited longer than --max-age (paused tags excepted). For "
        "Kubernetes probes and Docker HEALTHCHECK: it never prints a traceback."
    )
    # System checks are skipped: a probe must be fast, and its one line is its only output.
    requires_system_checks: list[str] = []
    examples = """
  manage.py kinetik_health
  manage.py kinetik_health --min-workers 2 --max-age 10m
  manage.py kinetik_health --tag mail --tag reports   # each tag needs a live worker
  manage.py kinetik_health --min-workers 0             # database and queue only

  # Dockerfile
  HEALTHCHECK --interval=30s --timeout=10s CMD python manage.py kinetik_health --timeout 8s

  # Kubernetes
  livenessProbe:
    exec: {command: [python, manage.py, kinetik_health, --timeout, "4s"]}
    timeoutSeconds: 5
"""

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--min-workers",
            type=_count,
            default=1,
            help="live workers required (default 1; 0 skips the check)",
        )
        parser.add_argument(
            "--tag",
            action="append",
            type=text_argument,
            default=[],
            help="require a live worker serving this tag (repeatable)",
        )
        parser.add_argument(
            "--max-age",
            type=duration_argument,
            default=300.0,
            help='longest a queued job may wait past its run time, e.g. "10m" (default 5m)',
        )
        parser.add_argument(
            "--timeout",
            type=duration_argument,
            default=5.0,
            help="give up (unhealthy) when the checks take longer than this (default 5s)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            with _deadline(options["timeout"]):
                summary = self.run_checks(options)
        except Unhealthy as problem:
            self._verdict(False, str(problem))
        except _OutOfTime:
            self._verdict(False, f"checks did not finish within {format_seconds(options['timeout'])}")
        else:
            self._verdict(True, summary)

    def _verdict(self, healthy: bool, text: str) -> None:
        self.stdout.write(f"{'ok' if healthy else 'unhealthy'}: {text}")
        if not healthy:
            self.stdout.flush()
            sys.exit(1)

    def run_checks(self, options: dict[str, Any]) -> str:
        """Run the checks in order; raise :class:`Unhealthy` at the first that fails."""
        try:
            settings = get_settings()
        except Exception as error:
            raise Unhealthy(f"configuration: {_first_line(error)}") from None
        passed = [_check_database(settings)]
        if settings.redis:
            passed.append(_check_redis())
        try:
            if options["min_workers"] > 0 or options["tag"]:
                passed.append(_check_workers(settings, options["min_workers"], options["tag"]))
            passed.append(_check_queue(settings, options["max_age"]))
        except Unhealthy:
            raise
        except Exception as error:
            raise Unhealthy(f"database error: {_first_line(error)}") from None
        return ", ".join(passed)


def _check_database(settings: KinetikSettings) -> str:
    try:
        get_backend(settings.database).ping()
    except Exception as error:
        raise Unhealthy(f"database {settings.database!r} unreachable: {_first_line(error)}") from None
    return "database up"


def _check_redis() -> str:
    try:
        redis_client().ping()
    except Exception as error:
        raise Unhealthy(f"redis unreachable: {_first_line(error)}") from None
    return "redis up"


def _check_workers(settings: KinetikSettings, minimum: int, tags: list[str]) -> str:
    # Only online workers count: a stopping one finishes its jobs but claims no more.
    since = timezone.now() - timedelta(seconds=settings.lease)
    live = list(
        Worker.objects.using(settings.database)
        .filter(state=Worker.State.ONLINE, last_heartbeat__gte=since)
        .values_list("tags", flat=True)
    )
    needed = max(minimum, 1 if tags else 0)
    if len(live) < needed:
        raise Unhealthy(
            f"{len(live)} live worker(s), need at least {needed} "
            f"(online, with a heartbeat within {format_seconds(settings.lease)})"
        )
    for tag in tags:
        if not any(tag in served for served in live):
            raise Unhealthy(f"no live worker serves tag {tag!r}")
    return f"{len(live)} live worker(s)"


def _check_queue(settings: KinetikSettings, max_age: float) -> str:
    now = timezone.now()
    paused = list(TagState.objects.using(settings.database).filter(paused=True).values_list("tag", flat=True))
    cutoff = now - timedelta(seconds=max_age)
    stale = (
        Job.objects.using(settings.database)
        .queued()
        # A django.tasks job may be enqueued with a run_after long past: it waits from its enqueue.
        .filter(run_at__lt=cutoff, created_at__lt=cutoff)
        .exclude(tag__in=paused)
        .order_by("run_at")
        .values_list("pk", "task", "tag", "run_at", "created_at", "error", "error_code")
        .first()
    )
    if stale is not None:
        job_id, task, tag, run_at, created_at, error, code = stale
        why = f": {error}" if code == WAITING_FOR_CODE else ""
        raise Unhealthy(
            f"queued job {job_id} ({task}, tag {tag}) has waited {age(max(run_at, created_at), now)}, "
            f"longer than --max-age {format_seconds(max_age)}{why}"
        )
    passed = f"no queued job older than {format_seconds(max_age)}"
    # Not unhealthy yet (an older worker during a deploy), but worth saying why.
    waiting = (
        Job.objects.using(settings.database)
        .queued()
        .filter(error_code=WAITING_FOR_CODE)
        .exclude(tag__in=paused)
        .order_by("run_at")
        .values_list("pk", "error")
        .first()
    )
    if waiting is not None:
        passed += f"; job {waiting[0]} is {waiting[1]}"
    return passed


#: an argparse type for counts that may be 0
_count = whole_number(0)


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


@contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    """Interrupt the checks after ``seconds`` (a hung connect or query) with :class:`_OutOfTime`.

    SIGALRM, so the checks run in this thread with this thread's database
    connection; where there is no SIGALRM (Windows) or this is not the main
    thread, the checks run without a deadline and the database's own timeouts apply.
    """
    if not seconds or not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: FrameType | None) -> None:
        raise _OutOfTime

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
