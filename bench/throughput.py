#!/usr/bin/env python3
"""The headline numbers, with the worker command at its defaults: what a user gets.

    python bench/throughput.py                              # SQLite and PostgreSQL
    python bench/throughput.py --db postgres --compare ../kinetik-before   # beside another checkout, in one run
    python bench/throughput.py --db postgres --redis        # the Redis fast path
    python bench/throughput.py --db postgres --worker-args "--concurrency 32"   # a tuned worker
    python bench/throughput.py --db postgres --django-tasks # jobs enqueued through django.tasks
    python bench/throughput.py --db postgres --pgbouncer transaction [--listen-direct]   # behind PgBouncer

Prints, per database and checkout: creating N jobs one by one and with
create_many (jobs/s); ``kinetik_worker --burst`` with no other flag draining N
queued no-op jobs, then with ``--processes 2``, then with ``--concurrency 1``
(jobs/s, from the first job's start to the last one's finish, and wall time
including start-up); enqueue-to-start latency with an idle worker (p50/p99,
and a create + job.wait() round trip; wake-ups by NOTIFY on PostgreSQL, by
Redis with ``--redis``, by SQLite's commit watch on SQLite); and the idle
worker's resident memory.

``--compare PATH`` runs the same measurements, in the same run, with the
package and settings of another checkout (say a ``git worktree`` of the
previous commit), one database at a time, this tree first. ``--redis URL``
(default redis://127.0.0.1:6379/0) uses keys under ``kinetik-bench:``.
``--django-tasks`` enqueues a ``django.tasks`` function through
KinetikTaskBackend instead (no bulk enqueue there: the drains' jobs are
enqueued one by one). Run it from the repository root in an environment with
the project installed.
"""

from __future__ import annotations

import argparse
import os
import random
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def describe(tree: Path) -> str:
    done = subprocess.run(
        ["git", "-C", str(tree), "log", "-1", "--format=%h %s"], capture_output=True, text=True, check=False
    )
    return done.stdout.strip()[:60] or str(tree)


def run_in_child(database: str, args: argparse.Namespace, tree: Path) -> None:
    env = dict(
        os.environ,
        KINETIK_BENCH_DB=database,
        DJANGO_SETTINGS_MODULE="bench.settings",
        PYTHONPATH=str(tree),
        KINETIK_BENCH_TREE=str(tree),
    )
    if args.redis:
        env["KINETIK_BENCH_REDIS"] = args.redis
    if args.django_tasks:
        env["KINETIK_BENCH_DJANGO_TASKS"] = "1"
    if args.pgbouncer:
        env["KINETIK_BENCH_PGBOUNCER"] = args.pgbouncer
    if args.listen_direct:
        env["KINETIK_BENCH_LISTEN_DIRECT"] = "1"
    command = [sys.executable, __file__, "--child", "--db", database, "--jobs", str(args.jobs)]
    command += ["--samples", str(args.samples), "--worker-args", args.worker_args]
    subprocess.run(command, env=env, cwd=tree, check=True)


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


def worker(*args: str) -> subprocess.Popen[bytes]:
    tree = os.environ.get("KINETIK_BENCH_TREE", str(ROOT))
    return subprocess.Popen(
        [sys.executable, "-m", "django", "kinetik_worker", "bench", "-v", "0", *args], cwd=tree, env=dict(os.environ)
    )


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def resident_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        return int(status.read().split("VmRSS:")[1].split()[0]) / 1024


def child(args: argparse.Namespace) -> None:
    import django

    django.setup()
    prepare_database(args.db)

    from django.db.models import Max, Min

    import django_kinetik as kinetik
    from django_kinetik.models import Job, Worker

    n = args.jobs
    mode = " + Redis fast path" if os.environ.get("KINETIK_BENCH_REDIS") else ""
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

    tree = Path(os.environ.get("KINETIK_BENCH_TREE", str(ROOT)))
    extra = shlex.split(args.worker_args)
    flags = " ".join(extra) or "no flags"
    print(f"== {args.db}{mode}: {describe(tree)} (Django {django.get_version()}, {n:,} jobs) ==", flush=True)

    started = time.perf_counter()
    for _ in range(n):
        if django_tasks:
            noop.enqueue()
        else:
            kinetik.create("bench.noop", {"n": 1})
    elapsed = time.perf_counter() - started
    print(f"create one by one    : {n / elapsed:>9,.0f} jobs/s", flush=True)
    Job.objects.all().delete()
    if not django_tasks:
        started = time.perf_counter()
        create_n()
        elapsed = time.perf_counter() - started
        print(f"create_many          : {n / elapsed:>9,.0f} jobs/s", flush=True)
    else:
        create_n()

    for label, more in (
        (f"drain ({flags})", []),
        ("drain, --processes 2", ["--processes", "2"]),
        ("drain, --concurrency 1", ["--concurrency", "1"]),
    ):
        if Job.objects.filter(status="queued").count() < n:
            create_n()
        started = time.perf_counter()
        code = worker("--burst", *extra, *more).wait()
        wall = time.perf_counter() - started
        assert code == 0, f"the worker exited {code}"
        span = Job.objects.aggregate(first=Min("started_at"), last=Max("finished_at"))
        done = Job.objects.filter(status="completed").count()
        assert done == n, f"only {done} of {n} jobs completed"
        drain = (span["last"] - span["first"]).total_seconds()
        print(f"{label:<21}: {n / drain:>9,.0f} jobs/s  ({wall:.1f}s wall with start-up)", flush=True)
        Job.objects.all().delete()

    process = worker(*extra)
    try:
        deadline = time.monotonic() + 30
        while not Worker.objects.filter(state="online").exists():
            assert time.monotonic() < deadline, "worker did not start"
            time.sleep(0.05)
        time.sleep(1.0)
        memory = resident_mb(process.pid)
        latencies = []
        after_commit = []
        round_trips = []
        for _ in range(args.samples):
            # A random pause of up to a second, as between a site's requests:
            # creates land at every point of the worker's wait.
            time.sleep(random.uniform(0.0, 1.0))
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
    print(
        f"enqueue-to-start     : p50 {statistics.median(latencies):.1f} ms, "
        f"p99 {percentile(latencies, 0.99):.1f} ms  ({args.samples} samples, idle worker)",
        flush=True,
    )
    # created_at is stamped before the INSERT: the line above includes create()
    # itself, which on an idle machine costs more than in a loop (the database
    # has to be woken). This splits it off.
    print(
        f"  of which after create() returned: p50 {statistics.median(after_commit):.1f} ms, "
        f"p99 {percentile(after_commit, 0.99):.1f} ms",
        flush=True,
    )
    print(
        f"create + job.wait()  : p50 {statistics.median(round_trips):.1f} ms, "
        f"p99 {percentile(round_trips, 0.99):.1f} ms  (a view that waits for its job's result)",
        flush=True,
    )
    print(f"idle worker memory   : {memory:.1f} MB resident", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--worker-args", default="", help='extra kinetik_worker flags, e.g. "--concurrency 32"')
    parser.add_argument("--compare", type=Path, nargs="*", default=[], help="other checkouts to measure alongside")
    parser.add_argument(
        "--redis", nargs="?", const="redis://127.0.0.1:6379/0", default="", help="use the Redis fast path (a URL)"
    )
    parser.add_argument("--django-tasks", action="store_true", help="enqueue through django.tasks instead")
    parser.add_argument(
        "--pgbouncer", choices=["transaction", "session"], help="PostgreSQL through Debian's pgbouncer in this mode"
    )
    parser.add_argument(
        "--listen-direct", action="store_true", help="with --pgbouncer transaction: LISTEN_DATABASE goes around it"
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    trees = [ROOT, *(tree.resolve() for tree in args.compare)]
    for database in ["sqlite", "postgres"] if args.db == "both" else [args.db]:
        for tree in trees:
            run_in_child(database, args, tree)


if __name__ == "__main__":
    main()
