#!/usr/bin/env python3
"""The baseline numbers: enqueue, drain and start latency, on SQLite and PostgreSQL.

    python bench/throughput.py                 # both databases
    python bench/throughput.py --db postgres --jobs 10000 --samples 100

Prints, per database: creating N jobs one by one and with create_many (jobs/s);
one ``kinetik_worker --burst`` process draining N queued no-op jobs (jobs/s,
from the first job's start to the last one's finish, and wall time including
process start-up); and enqueue-to-start latency with an idle worker (p50/p99).
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
    command = [
        sys.executable,
        __file__,
        "--child",
        "--db",
        database,
        "--jobs",
        str(args.jobs),
        "--samples",
        str(args.samples),
    ]
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
    print(f"== {args.db} (Django {django.get_version()}, {n:,} jobs) ==", flush=True)

    started = time.perf_counter()
    for _ in range(n):
        kinetik.create("bench.noop", {"n": 1})
    elapsed = time.perf_counter() - started
    print(f"create one by one : {n / elapsed:>9,.0f} jobs/s", flush=True)
    Job.objects.all().delete()

    started = time.perf_counter()
    kinetik.create_many("bench.noop", [{"n": 1}] * n)
    elapsed = time.perf_counter() - started
    print(f"create_many       : {n / elapsed:>9,.0f} jobs/s", flush=True)

    started = time.perf_counter()
    code = worker("--burst").wait()
    wall = time.perf_counter() - started
    assert code == 0, f"worker exited {code}"
    span = Job.objects.aggregate(first=Min("started_at"), last=Max("finished_at"))
    done = Job.objects.filter(status="completed").count()
    assert done == n, f"only {done} of {n} jobs completed"
    drain = (span["last"] - span["first"]).total_seconds()
    print(f"drain, 1 process  : {n / drain:>9,.0f} jobs/s  ({wall:.1f}s wall with start-up)", flush=True)
    Job.objects.all().delete()

    process = worker()
    try:
        deadline = time.monotonic() + 30
        while not Worker.objects.filter(state="online").exists():
            assert time.monotonic() < deadline, "worker did not start"
            time.sleep(0.05)
        time.sleep(0.5)
        latencies = []
        interval_seconds = get_settings().interval
        for _ in range(args.samples):
            # A random pause across a whole poll interval, so creates land at
            # every point of the worker's wait, not just after it started.
            time.sleep(random.uniform(0.0, interval_seconds))
            job = kinetik.create("bench.noop")
            while True:
                job.refresh_from_db(fields=["status", "started_at", "created_at"])
                if job.started_at is not None:
                    break
                time.sleep(0.002)
            latencies.append((job.started_at - job.created_at).total_seconds() * 1000)
    finally:
        process.terminate()
        process.wait()
    interval = os.environ.get("KINETIK_BENCH_INTERVAL", "1s")
    print(
        f"enqueue-to-start  : p50 {statistics.median(latencies):.1f} ms, "
        f"p99 {percentile(latencies, 0.99):.1f} ms  ({args.samples} samples, idle worker, "
        f"INTERVAL {interval})",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=60)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    for database in ["sqlite", "postgres"] if args.db == "both" else [args.db]:
        run_in_child(database, args)


if __name__ == "__main__":
    main()
