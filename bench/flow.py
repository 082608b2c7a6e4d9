#!/usr/bin/env python3
"""Flow control: what limits and after=[...] cost, and whether limits hold under load.

    python bench/flow.py                      # SQLite and PostgreSQL
    python bench/flow.py --db postgres --jobs 20000

Prints, per database, with ``kinetik_worker --burst`` processes at ``--concurrency 32``:

- the plain drain of N no-op jobs, with and without limited tasks registered in
  the workers (their idle cost: a look per limited task per round of claims);
- N jobs of a task limited to 4 at once per customer, over 500 customers (the
  limited claim's own speed), and the most that ever ran at once for one customer;
- 2,000 jobs of 5 ms each limited to 8 at once in all (at best 1,600/s), and the
  most that ever ran at once;
- 2,500 jobs limited to 500 starts a second, and the most that started in any
  one-second window;
- a chain of 200 jobs, each after the one before, with one idle worker: the
  time from one job's end to the next one's start (p50/p99);
- fan-in: one job after 2,000 others, from the last of them ending to its start.
Run it from the repository root in an environment with the project installed.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.throughput import percentile, prepare_database  # noqa: E402


def run_in_child(database: str, args: argparse.Namespace) -> None:
    env = dict(
        os.environ,
        KINETIK_BENCH_DB=database,
        DJANGO_SETTINGS_MODULE="bench.settings",
        PYTHONPATH=str(ROOT),
        KINETIK_BENCH_LIMITED="1",
    )
    command = [sys.executable, __file__, "--child", "--db", database, "--jobs", str(args.jobs)]
    subprocess.run(command, env=env, cwd=ROOT, check=True)


def drain(tags: list[str], processes: int, *, limited: bool = True) -> float:
    """Run burst workers until the queue is empty; the wall time."""
    env = dict(os.environ)
    if not limited:
        env.pop("KINETIK_BENCH_LIMITED", None)
    started = time.perf_counter()
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "django", "kinetik_worker", *tags, "--burst", "--concurrency", "32", "-v", "0"],
            cwd=ROOT,
            env=env,
        )
        for _ in range(processes)
    ]
    codes = [process.wait() for process in workers]
    assert codes == [0] * processes, f"workers exited {codes}"
    return time.perf_counter() - started


def rate(task: str) -> float:
    """Jobs per second of ``task``, from its first start to its last end."""
    from django.db.models import Max, Min

    from django_kinetik.models import Job

    jobs = Job.objects.filter(task=task)
    assert set(jobs.values_list("status", flat=True)) == {"completed"}, "not every job completed"
    span = jobs.aggregate(first=Min("started_at"), last=Max("finished_at"))
    return jobs.count() / (span["last"] - span["first"]).total_seconds()


def most_at_once(task: str, by_key: bool = False) -> int:
    """The most attempts of ``task`` running at one moment (per limit key, the highest of them)."""
    from collections import defaultdict

    from django_kinetik.models import JobRun

    events: dict[str, list[tuple[object, int]]] = defaultdict(list)
    for key, started, finished in JobRun.objects.filter(job__task=task).values_list(
        "job__limit_key", "started_at", "finished_at"
    ):
        events[key if by_key else ""] += [(started, 1), (finished, -1)]
    most = 0
    for moments in events.values():
        running = 0
        for _, step in sorted(moments, key=lambda event: (event[0], event[1])):
            running += step
            most = max(most, running)
    return most


def most_in_a_second(task: str) -> int:
    from django_kinetik.models import JobRun

    starts = sorted(JobRun.objects.filter(job__task=task).values_list("started_at", flat=True))
    most, first = 0, 0
    for last, start in enumerate(starts):
        while starts[first] <= start - timedelta(seconds=1):
            first += 1
        most = max(most, last - first + 1)
    return most


def child(args: argparse.Namespace) -> None:
    import django

    django.setup()
    prepare_database(args.db)
    import django_kinetik as kinetik
    from django_kinetik.models import Job

    n = args.jobs
    print(f"== {args.db} (Django {django.get_version()}, --concurrency 32) ==", flush=True)

    for limited in (False, True):
        kinetik.create_many("bench.noop", [{}] * n)
        drain(["bench"], 1, limited=limited)
        label = "with 3 limited tasks registered" if limited else "no limited tasks"
        print(f"plain drain, {label:<31}: {rate('bench.noop'):>7,.0f} jobs/s", flush=True)
        Job.objects.all().delete()

    for processes in (1, 2):
        kinetik.create_many("bench.per_customer", [{"customer_id": i % 500} for i in range(n)])
        drain(["limited"], processes)
        print(
            f"4 at once per customer, {processes} process{'es' if processes > 1 else '  '}         : "
            f"{rate('bench.per_customer'):>7,.0f} jobs/s  (most at once for one customer: "
            f"{most_at_once('bench.per_customer', by_key=True)})",
            flush=True,
        )
        Job.objects.all().delete()

    kinetik.create_many("bench.eight_at_once", [{}] * 2000)
    drain(["limited"], 2)
    print(
        f"8 at once in all, 5 ms jobs, 2 processes    : {rate('bench.eight_at_once'):>7,.0f} jobs/s  "
        f"(at best 1,600; most at once: {most_at_once('bench.eight_at_once')})",
        flush=True,
    )
    Job.objects.all().delete()

    kinetik.create_many("bench.paced", [{}] * 2500)
    drain(["paced"], 2)
    print(
        f"rate_limit 500/s, 2 processes                : {rate('bench.paced'):>7,.0f} jobs/s  "
        f"(most started in any second: {most_in_a_second('bench.paced')})",
        flush=True,
    )
    Job.objects.all().delete()

    chain = [kinetik.create("bench.noop")]
    for _ in range(199):
        chain.append(kinetik.create("bench.noop", after=[chain[-1]]))
    drain(["bench"], 1)
    rows = {job.pk: job for job in Job.objects.filter(pk__in=[job.pk for job in chain])}
    hops = [
        (rows[after.pk].started_at - rows[before.pk].finished_at).total_seconds() * 1000
        for before, after in itertools.pairwise(chain)
    ]
    print(
        f"chain of 200, one job's end to the next start: p50 {statistics.median(hops):.1f} ms, "
        f"p99 {percentile(hops, 0.99):.1f} ms",
        flush=True,
    )
    Job.objects.all().delete()

    parents = kinetik.create_many("bench.noop", [{}] * 2000)
    last = kinetik.create("bench.noop", after=parents)
    drain(["bench"], 1)
    from django.db.models import Max

    ended = Job.objects.filter(pk__in=[job.pk for job in parents]).aggregate(last=Max("finished_at"))["last"]
    waited = (Job.objects.get(pk=last.pk).started_at - ended).total_seconds() * 1000
    print(f"fan-in of 2,000, the last parent's end to the child's start: {waited:.1f} ms", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    for database in ["sqlite", "postgres"] if args.db == "both" else [args.db]:
        run_in_child(database, args)


if __name__ == "__main__":
    main()
