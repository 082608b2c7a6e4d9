"""Run the example end to end: a worker, demo jobs, the admin to look at them."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

import django_kinetik as kinetik
from django_kinetik.management.tables import render_table
from django_kinetik.models import Job, JobLog, Status

MANAGE = Path(__file__).resolve().parents[4] / "manage.py"


def _free_port(preferred: int) -> int:
    for port in range(preferred, preferred + 50):
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) != 0:
                return port
    raise RuntimeError("no free port found for the admin")


def _wait(processes: list[subprocess.Popen[bytes]], seconds: float) -> None:
    """Give the children up to ``seconds`` to exit; another Ctrl-C ends the wait (and they are killed)."""
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline and any(process.poll() is None for process in processes):
            time.sleep(0.1)
    except KeyboardInterrupt:
        pass


class Command(BaseCommand):
    help = "Migrate, start a worker and the admin, create demo jobs and show them completing."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--exit", action="store_true", help="stop once the demo jobs have finished instead of serving the admin"
        )
        parser.add_argument("--port", type=int, default=8000)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            self._demo(options)
        except KeyboardInterrupt:  # before the children started (or after they stopped): nothing to tidy
            sys.exit(130)

    def _demo(self, options: dict[str, Any]) -> None:
        self.stdout.write("Migrating the example database (SQLite)...")
        call_command("migrate", verbosity=0)
        user_model = get_user_model()
        if not user_model.objects.filter(username="admin").exists():
            user_model.objects.create_superuser("admin", "admin@example.com", "admin")
        earlier = Job.objects.count()
        if earlier:
            # The demo's summary is about its own jobs: it starts from an empty queue, and says so.
            self.stdout.write(f"Clearing {earlier} job(s) from earlier runs (with their logs and attempts)...")
            Job.objects.all().delete()

        processes: list[subprocess.Popen[bytes]] = []
        interrupted = False
        # Each child in a session of its own: a Ctrl-C in the terminal reaches only the demo,
        # which stops them with one SIGTERM each (the worker's graceful stop), even while they start.
        worker = subprocess.Popen(
            [sys.executable, str(MANAGE), "kinetik_worker", "messaging", "reports", "images", "--concurrency", "2"],
            start_new_session=True,
        )
        processes.append(worker)
        port = None
        if not options["exit"]:
            port = _free_port(options["port"])
            processes.append(
                subprocess.Popen(
                    [sys.executable, str(MANAGE), "runserver", f"127.0.0.1:{port}", "--noreload"],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )
        try:
            jobs = self._create_jobs()
            finished = self._watch(jobs, timeout=60)
            self._summary(jobs)
            if not finished:
                self.stderr.write("Some demo jobs did not finish within 60 seconds.")
                sys.exit(1)
            if port is not None:
                self.stdout.write(
                    self.style.SUCCESS(
                        f"\nThe admin: http://127.0.0.1:{port}/admin/django_kinetik/job/  "
                        f"(login: admin / admin)\nThe worker keeps running; press Ctrl-C to stop."
                    )
                )
                self._wait_for_exit(processes)
        except KeyboardInterrupt:
            interrupted = True
            self.stdout.write("\nStopping the worker and the admin... (Ctrl-C again to stop at once)")
        finally:
            for process in processes:
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
            _wait(processes, 15)
            for process in processes:
                if process.poll() is None:
                    process.kill()
        if interrupted:
            sys.exit(130)  # what a shell reports for Ctrl-C, without a traceback

    def _wait_for_exit(self, processes: list[subprocess.Popen[bytes]]) -> None:
        """Serve until Ctrl-C (``KeyboardInterrupt``, handled by the caller), or until one of the children exits."""
        while all(process.poll() is None for process in processes):
            time.sleep(0.5)
        self.stderr.write("The worker or the admin server stopped; ending the demo.")

    def _create_jobs(self) -> list[Job]:
        from example_project.demo.background import make_thumbnail

        self.stdout.write("Creating demo jobs on three tags, messaging, reports and images...")
        jobs = kinetik.create_many("demo.greet", [{"name": name} for name in ("Ada", "Grace", "Linus")])
        jobs.append(kinetik.create("demo.greet", {"name": "a delayed friend"}, delay="3s"))
        jobs.append(kinetik.create("demo.flaky", {"to": "ops@example.com"}))
        report = kinetik.create("demo.report", {"rows": 8}, priority="high")
        jobs.append(report)
        # Waits for the report (status "waiting"), then runs.
        jobs.append(kinetik.create("demo.summary", after=[report]))
        # Limited to one at a time per account and four starts a second: held back in the queue, never in a slot.
        jobs += kinetik.create_many("demo.sync", [{"account": account} for account in ("acme", "acme", "globex")])
        # Django's own Tasks API, on the same queue: the result is a Job too.
        result = make_thumbnail.enqueue("holiday.jpg", size=256)
        self.stdout.write(f"Enqueued {make_thumbnail.name} through django.tasks as job {result.id}.")
        jobs.append(Job.objects.get(pk=result.id))
        return jobs

    def _watch(self, jobs: list[Job], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        seen: dict[int, tuple[str, int]] = {}
        while time.monotonic() < deadline:
            rows = Job.objects.filter(pk__in=[job.pk for job in jobs]).order_by("pk")
            for job in rows:
                state = (job.status, job.attempts)
                if seen.get(job.pk) != state:
                    seen[job.pk] = state
                    progress = f" {job.progress_percent:.0f}%" if job.progress_percent is not None else ""
                    self.stdout.write(
                        f"  job {job.pk:>3} {job.task:<12} [{job.tag}] {job.status} (attempt {job.attempts}){progress}"
                    )
            if all(job.status in (Status.COMPLETED, Status.FAILED, Status.CANCELLED) for job in rows):
                return True
            time.sleep(0.2)
        return False

    def _summary(self, jobs: list[Job]) -> None:
        rows = []
        for job in Job.objects.filter(pk__in=[job.pk for job in jobs]).order_by("pk"):
            rows.append(
                [
                    job.pk,
                    job.task,
                    job.tag,
                    job.status,
                    job.attempts,
                    f"{job.duration.total_seconds():.2f}s" if job.duration else "-",
                    str(job.result if job.result is not None else job.error)[:50],
                ]
            )
        self.stdout.write("\n" + render_table(["ID", "TASK", "TAG", "STATUS", "ATTEMPTS", "RAN", "RESULT"], rows))
        report = next(job for job in jobs if job.task == "demo.report")
        lines = JobLog.objects.filter(job_id=report.pk).values_list("message", flat=True)
        self.stdout.write(f"\nLog of job {report.pk} (demo.report): " + " | ".join(lines))
