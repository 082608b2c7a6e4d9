#!/usr/bin/env python3
"""The headline numbers: enqueue, drain and start latency, one harness for every mode.

    python bench/throughput.py                              # SQLite and PostgreSQL
    python bench/throughput.py --db postgres --jobs 10000 --samples 200
    python bench/throughput.py --db postgres --redis        # the Redis fast path
    python bench/throughput.py --db postgres --processes 1 2 --concurrency 32
    python bench/throughput.py --db postgres --django-tasks # jobs enqueued through django.tasks

Prints, per database: creating N jobs one by one and with create_many (jobs/s);
``kinetik_worker --burst`` processes (1, then 2 by default) draining N queued
no-op jobs (jobs/s, from the first job's start to the last one's finish, and
wall time including process start-up); and enqueue-to-start latency with an
idle worker (p50/p99, and a create + job.wait() round trip; wake-ups by NOTIFY on PostgreSQL, by Redis with
``--redis``, by polling on SQLite). ``--redis URL`` (default
redis://127.0.0.1:6379/0) uses keys under ``kinetik-bench:``. ``--django-tasks``
enqueues a ``django.tasks`` function through KinetikTaskBackend instead of
creating kinetik jobs (no bulk enqueue there: the drains' jobs are enqueued one by one).
Run it from the repository root in an environment with the project installed.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_in_child(database: str, args: argparse.Namespace) -> None:
    env = dict(os.environ, KINETIK_BENCH_DB=database, DJANGO_SETTINGS_MODULE="bench.settings", PYTHONPATH=str(ROOT))
    if args.redis:
        env["KINETIK_BENCH_REDIS"] = args.redis
    if args.django_tasks:
        env["KINETIK_BENCH_DJANGO_TASKS"] = "1"
    command = [sys.executable, __file__, "--child", "--db", database, "--jobs", str(args.jobs)]
    command += ["--samples", str(args.samples), "--concurrency", str(args.concurrency)]
    command += ["--processes", *map(str, args.processes)]
    subprocess.run(command, env=env, cwd=ROOT, check=True)


def prepare_database(database: str) -> None:
    from django.conf import settings

    if database == "postgres":
        import psycopg

        options = settings.DATABASES["default"]
        with psycopg.connect(
            host=options["HOST"], port=options["PORT"], user=options["USER"], dbname="postgres", autocommit=True
        ) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{options["NAME"]}" WITH (FORCE)')
            connection.execute(f'CREATE DATABASE "{options["NAME"]}"')
    else:
        for suffix in ("", "-wal", "-shm"):
            Path(settings.DATABASES["default"]["NAME"] + suffix).unlink(missing_ok=True)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    if settings.KINETIK.get("REDIS"):
        import redis

        client = redis.Redis.from_url(settings.KINETIK["REDIS"])
        for key in client.scan_iter(f"{settings.KINETIK['REDIS_PREFIX']}:*"):
            client.delete(key)


def worker(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "django", "kinetik_worker", "bench", "-v", "0", *args],
        cwd=ROOT,
        env=dict(os.environ),
    )


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def child(args: argparse.Namespace) -> None:
    import django

    django.setup()
    prepare_database(args.db)

    from django.db.models import Max, Min

    import django_kinetik as kinetik
    from django_kinetik.conf import get_settings
    from django_kinetik.models import Job, Worker

    n = args.jobs
    mode = " + Redis fast path" if get_settings().redis else ""
    django_tasks = bool(os.environ.get("KINETIK_BENCH_DJANGO_TASKS"))
    if django_tasks:
        from bench.benchapp.django_tasks import noop

        mode += ", django.tasks enqueue()"

        def create_one() -> tuple[Job, float]:
            result = noop.enqueue()
            created = time.time()
            return Job.objects.get(pk=result.id), created

        def create_n() -> None:
            for _ in range(n):
                noop.enqueue()
    else:

        def create_one() -> tuple[Job, float]:
            return kinetik.create("bench.noop", {"n": 1}), time.time()

        def create_n() -> None:
            kinetik.create_many("bench.noop", [{"n": 1}] * n)

    print(f"== {args.db}{mode} (Django {django.get_version()}, {n:,} jobs) ==", flush=True)

    started = time.perf_counter()
    for _ in range(n):
        if django_tasks:
            noop.enqueue()
        else:
            kinetik.create("bench.noop", {"n": 1})
    elapsed = time.perf_counter() - started
    print(f"create one by one : {n / elapsed:>9,.0f} jobs/s", flush=True)
    if not django_tasks:
        Job.objects.all().delete()
        started = time.perf_counter()
        create_n()
        elapsed = time.perf_counter() - started
        print(f"create_many       : {n / elapsed:>9,.0f} jobs/s", flush=True)

    for processes in args.processes:
        if processes != args.processes[0]:
            create_n()
        started = time.perf_counter()
        workers = [worker("--burst", "--concurrency", str(args.concurrency)) for _ in range(processes)]
        codes = [process.wait() for process in workers]
        wall = time.perf_counter() - started
        assert codes == [0] * processes, f"workers exited {codes}"
        span = Job.objects.aggregate(first=Min("started_at"), last=Max("finished_at"))
        done = Job.objects.filter(status="completed").count()
        assert done == n, f"only {done} of {n} jobs completed"
        drain = (span["last"] - span["first"]).total_seconds()
        label = f"drain, {processes} process{'es' if processes > 1 else ''}"
        print(
            f"{label:<18}: {n / drain:>9,.0f} jobs/s  "
            f"({wall:.1f}s wall with start-up, --concurrency {args.concurrency})",
            flush=True,
        )
        Job.objects.all().delete()

    process = worker()
    try:
        deadline = time.monotonic() + 30
        while not Worker.objects.filter(state="online").exists():
            assert time.monotonic() < deadline, "worker did not start"
            time.sleep(0.05)
        time.sleep(0.5)
        latencies = []
        after_commit = []
        round_trips = []
        interval_seconds = get_settings().interval
        for _ in range(args.samples):
            # A random pause across a whole poll interval, so creates land at
            # every point of the worker's wait, not just after it started.
            time.sleep(random.uniform(0.0, interval_seconds))
            began = time.perf_counter()
            job, created = create_one()  # created: when create() returned (committed and announced)
            # A view's "hot job": wait for the result (woken by the feed where there is one).
            job.wait(timeout="10s")
            round_trips.append((time.perf_counter() - began) * 1000)
            job.refresh_from_db(fields=["status", "started_at", "created_at"])
            latencies.append((job.started_at - job.created_at).total_seconds() * 1000)
            after_commit.append((job.started_at.timestamp() - created) * 1000)
    finally:
        process.terminate()
        process.wait()
    interval = os.environ.get("KINETIK_BENCH_INTERVAL", "1s")
    wakeups = "Redis" if get_settings().redis else ("NOTIFY" if args.db == "postgres" else "polling only")
    print(
        f"enqueue-to-start  : p50 {statistics.median(latencies):.1f} ms, "
        f"p99 {percentile(latencies, 0.99):.1f} ms  ({args.samples} samples, idle worker, "
        f"INTERVAL {interval}, wake-ups by {wakeups})",
        flush=True,
    )
    # created_at is stamped before the INSERT: the line above includes create()
    # itself, which on an idle machine costs more than in a loop (the database
    # backend has to be woken). This splits it off.
    print(
        f"  of which after create() returned: p50 {statistics.median(after_commit):.1f} ms, "
        f"p99 {percentile(after_commit, 0.99):.1f} ms",
        flush=True,
    )
    print(
        f"create + job.wait() : p50 {statistics.median(round_trips):.1f} ms, "
        f"p99 {percentile(round_trips, 0.99):.1f} ms  (a view that waits for its job's result)",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=60)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2], help="worker processes per drain")
    parser.add_argument("--concurrency", type=int, default=32, help="--concurrency of each worker")
    parser.add_argument(
        "--redis", nargs="?", const="redis://127.0.0.1:6379/0", default="", help="use the Redis fast path (a URL)"
    )
    parser.add_argument("--django-tasks", action="store_true", help="enqueue through django.tasks instead")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    for database in ["sqlite", "postgres"] if args.db == "both" else [args.db]:
        run_in_child(database, args)


if __name__ == "__main__":
    main()
