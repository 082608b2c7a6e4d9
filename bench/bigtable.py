#!/usr/bin/env python3
"""The hot path, the admin and the stats with millions of finished jobs in the table (PostgreSQL).

    python bench/bigtable.py                        # 5,000,000 finished jobs and their runs
    python bench/bigtable.py --rows 200000          # a quick run
    python bench/bigtable.py --keep                 # reuse the filled database of an earlier run

Measures the same things on two databases of its own: an "empty" one
(``kinetik_bigtable_bench_empty``, made with ``--small`` finished jobs, 2,000
by default, so that every admin page measured shows a full page of rows in
both: an empty filtered page renders in a third of the time) and one filled
with ``--rows`` finished jobs and a run each (``kinetik_bigtable_bench``; with
``--keep`` either is filled only if it does not hold its jobs yet). Rounds
alternate between the two (``--rounds``; the first fills, the others keep);
it prints the medians side by side with the issue's verdicts (claim, settle
and the admin list within 20% of the empty table; ``api/stats`` and
``metrics`` within 50 ms):

- ``kinetik_worker bench --burst`` at its defaults draining ``--drain`` no-op
  jobs (jobs/s from the first start to the last finish, like throughput.py),
  with the purge on: the filled jobs finished over the past ``--span`` hours
  and PURGE_AFTER is 1 day, so the oldest are being deleted meanwhile (at
  the purge's pace, 2,000 a second); then again with PURGE_AFTER 30 days,
  nothing to delete, which tells the purge's share from the table's;
- one claim of ``--batch`` jobs and one settle of them, called in-process
  (median and p95 of ``--samples`` rounds, milliseconds);
- the admin's job list, its first page and a filtered one, and ``api/stats``
  and ``metrics``, rendered in-process as a superuser (median of ``--samples``
  after 2 warm-ups).

The fill is one ``INSERT ... SELECT generate_series`` for the jobs and one for
the runs (the counting triggers off meanwhile, then the counts written in one
grouped insert, as migration 0008 does), then ``VACUUM ANALYZE``. The load
average is printed with each figure: the machine may be shared.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DATABASE = "kinetik_bigtable_bench"

#: finished jobs only: 92% completed, 5% failed, 2% cancelled, 1% timed out; 10 tasks in 5 tags;
#: finished evenly over the ``%(span)s`` hours before an hour ago
FILL_JOBS = """
INSERT INTO django_kinetik_job (task, tag, priority, status, data, options, error, error_code,
    attempts, ghosts, run_at, created_at, started_at, finished_at, progress_current, progress_total)
SELECT 'bench.task' || (g %% 10), 'tag' || (g %% 5), 0,
       CASE WHEN g %% 100 < 92 THEN 'completed' WHEN g %% 100 < 97 THEN 'failed'
            WHEN g %% 100 < 99 THEN 'cancelled' ELSE 'timeout' END,
       jsonb_build_object('customer', 'customer-' || (g %% 5000), 'n', g), '{}',
       CASE WHEN g %% 100 BETWEEN 92 AND 96 THEN 'card declined' ELSE '' END, '',
       1, 0, finished - interval '40 milliseconds', finished - interval '40 milliseconds',
       finished - interval '40 milliseconds', finished, 1, 1
FROM (SELECT g, now() - interval '1 hour' - make_interval(secs => %s * 3600 * (1 - g::float8 / %s)) AS finished
      FROM generate_series(1, %s) AS g) AS rows
"""
FILL_RUNS = """
INSERT INTO django_kinetik_jobrun (job_id, attempt, worker_id, outcome, started_at, finished_at, error, error_code,
    exception, traceback)
SELECT id, 1, NULL, status, started_at, finished_at, error, '', '', '' FROM django_kinetik_job
"""
FILL_COUNTS = """
INSERT INTO django_kinetik_jobcount (shard, task, tag, status, count)
SELECT 0, task, tag, status, count(*) FROM django_kinetik_job GROUP BY task, tag, status
"""

#: name, empty/full bound (None: an absolute bound in ms instead), absolute bound
VERDICTS = {
    "drain (jobs/s)": ("at least 80% of empty", None),
    "drain, purge idle (jobs/s)": ("at least 80% of empty", None),
    "claim p50 (ms)": ("within 20%", None),
    "settle p50 (ms)": ("within 20%", None),
    "admin list (ms)": ("within 20%", None),
    "admin list, status=failed (ms)": ("within 20%", None),
    "admin list, tag=tag3 (ms)": ("within 20%", None),
    "api/stats (ms)": (None, 50.0),
    "metrics (ms)": (None, 50.0),
}


def load() -> str:
    return f"load {os.getloadavg()[0]:.2f}"


def run_child(phase: str, args: argparse.Namespace, keep: bool) -> dict[str, list]:
    name = DATABASE if phase == "full" else f"{DATABASE}_empty"
    env = dict(
        os.environ,
        KINETIK_BENCH_DB="postgres",
        KINETIK_BENCH_PG_NAME=name,
        KINETIK_BENCH_PURGE_AFTER="1d",
        DJANGO_SETTINGS_MODULE="bench.settings",
        PYTHONPATH=str(ROOT),
    )
    command = [sys.executable, __file__, "--child", phase, *sys.argv[1:], *(["--keep"] if keep else [])]
    done = subprocess.run(command, env=env, cwd=ROOT, check=True, stdout=subprocess.PIPE, text=True)
    results: dict[str, list] = {}
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            results = json.loads(line[len("RESULT ") :])
        else:
            print(line, flush=True)
    return results


def filled(rows: int) -> bool:
    """Whether the benchmark database exists and holds the fill (a --keep run)."""
    from django.db import connection
    from django.db.utils import OperationalError

    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE relname = 'django_kinetik_job'")
            row = cursor.fetchone()
    except OperationalError:  # no such database yet
        return False
    return bool(row) and row[0] >= 0.9 * rows


def fill(rows: int, span: float) -> None:
    from django.db import connection, transaction

    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        # The NOTIFY and counting triggers would run (or gather) per row; the counts go in at once after.
        cursor.execute("ALTER TABLE django_kinetik_job DISABLE TRIGGER USER")
        cursor.execute(FILL_JOBS, [span, rows, rows])
        cursor.execute(FILL_RUNS)
        cursor.execute(FILL_COUNTS)
        cursor.execute("ALTER TABLE django_kinetik_job ENABLE TRIGGER USER")
    inserted = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE) django_kinetik_job")
        cursor.execute("VACUUM (ANALYZE) django_kinetik_jobrun")
        cursor.execute("VACUUM (ANALYZE) django_kinetik_jobcount")
    print(
        f"filled {rows:,} jobs and runs in {inserted:.0f}s, vacuumed in {time.perf_counter() - started - inserted:.0f}s"
        f" ({load()})",
        flush=True,
    )


def drain(jobs: int, purge_after: str = "1d") -> float:
    """``kinetik_worker --burst`` at its defaults on ``jobs`` queued no-op jobs: jobs/s."""
    from django.db.models import Max, Min

    import django_kinetik as kinetik
    from bench.throughput import worker
    from django_kinetik.models import Job

    first = kinetik.create_many("bench.noop", [{"n": 1}] * jobs)[0].pk
    os.environ["KINETIK_BENCH_PURGE_AFTER"] = purge_after  # the worker's environment
    code = worker("--burst").wait()
    assert code == 0, f"the worker exited {code}"
    ours = Job.objects.filter(pk__gte=first, task="bench.noop")
    assert ours.filter(status="completed").count() == jobs, "not every job completed"
    span = ours.aggregate(first=Min("started_at"), last=Max("finished_at"))
    return jobs / (span["last"] - span["first"]).total_seconds()


def statements(samples: int, batch: int) -> tuple[list[float], list[float]]:
    """Milliseconds per claim of ``batch`` jobs and per settle of them, in-process."""
    from django.utils import timezone

    import django_kinetik as kinetik
    from django_kinetik.backends import get_backend
    from django_kinetik.backends.base import Runnable, Settlement, WorkerInfo
    from django_kinetik.models import Outcome, Status

    backend = get_backend()
    worker_id = backend.register_worker(
        WorkerInfo(
            name=f"bigtable-{os.getpid()}-{time.time()}",
            host="bench",
            pid=os.getpid(),
            tags=["bench"],
            concurrency=batch,
        )
    )
    kinetik.create_many("bench.noop", [{"n": 1}] * (samples + 5) * batch)
    runnable = Runnable(tasks=("bench.noop",))
    claims, settles = [], []
    for attempt in range(samples + 5):
        started = time.perf_counter()
        jobs = backend.claim(worker_id, ["bench"], runnable, batch, 60.0)
        claimed = time.perf_counter()
        ended = Settlement(status=Status.COMPLETED, outcome=Outcome.COMPLETED, finished_at=timezone.now())
        backend.settle_many([(job, ended) for job in jobs])
        settled = time.perf_counter()
        assert len(jobs) == batch, f"claimed {len(jobs)} of {batch}"
        if attempt >= 5:  # after the statements are prepared
            claims.append((claimed - started) * 1000)
            settles.append((settled - claimed) * 1000)
    backend.retire_worker(worker_id, {"jobs_done": 0, "runaway_threads": 0})
    return claims, settles


def pages(samples: int) -> dict[str, float]:
    """Median milliseconds per page, rendered in-process as a superuser."""
    from django.contrib.auth.models import User
    from django.test import Client

    user = User.objects.filter(username="bench").first() or User.objects.create_superuser("bench", "", "bench")
    client = Client()
    client.force_login(user)
    paths = {
        "admin list (ms)": "/admin/django_kinetik/job/",
        "admin list, status=failed (ms)": "/admin/django_kinetik/job/?status__exact=failed",
        "admin list, tag=tag3 (ms)": "/admin/django_kinetik/job/?tag=tag3",
        "api/stats (ms)": "/kinetik/api/stats",
        "metrics (ms)": "/kinetik/metrics",
    }
    medians = {}
    for name, path in paths.items():
        timings = []
        for attempt in range(samples + 2):
            started = time.perf_counter()
            response = client.get(path)
            elapsed = (time.perf_counter() - started) * 1000
            assert response.status_code == 200, (path, response.status_code)
            if attempt >= 2:
                timings.append(elapsed)
        medians[name] = statistics.median(timings)
    return medians


def child(args: argparse.Namespace) -> None:
    import django

    django.setup()
    from bench.throughput import percentile, prepare_database
    from django_kinetik.models import Job

    phase = args.child
    rows = args.rows if phase == "full" else args.small
    if not (args.keep and filled(rows)):
        prepare_database("postgres")
        fill(rows, args.span)
    results: dict[str, list] = {}
    rows = Job.objects.count()
    print(f"-- {phase} table: {rows:,} jobs ({load()})", flush=True)
    results["drain (jobs/s)"] = [drain(args.drain), load()]
    # The same with nothing due for the purge: what the purge's deleting cost the drain above.
    results["drain, purge idle (jobs/s)"] = [drain(args.drain, purge_after="30d"), load()]
    claims, settles = statements(args.samples, args.batch)
    results["claim p50 (ms)"] = [statistics.median(claims), load()]
    results["claim p95 (ms)"] = [percentile(claims, 0.95), load()]
    results["settle p50 (ms)"] = [statistics.median(settles), load()]
    results["settle p95 (ms)"] = [percentile(settles, 0.95), load()]
    for name, value in pages(args.samples).items():
        results[name] = [value, load()]
    print("RESULT " + json.dumps(results), flush=True)


def verdict(name: str, empty: float, full: float) -> str:
    relative, bound = VERDICTS.get(name, (None, None))
    if relative == "within 20%":
        return "ok" if full <= 1.2 * empty else "OVER 20%"
    if relative == "at least 80% of empty":
        return "ok" if full >= 0.8 * empty else "UNDER 80%"
    if bound is not None:
        return "ok" if full <= bound else f"OVER {bound:.0f} ms"
    return ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=5_000_000, help="finished jobs in the full table")
    parser.add_argument("--keep", action="store_true", help="reuse the filled database if it holds --rows jobs")
    parser.add_argument(
        "--small", type=int, default=2_000, help="finished jobs in the 'empty' table (every admin page full)"
    )
    parser.add_argument("--span", type=float, default=25.0, help="hours the filled jobs finished over")
    parser.add_argument("--drain", type=int, default=10_000, help="jobs each drain runs")
    parser.add_argument("--samples", type=int, default=30, help="rounds per timing")
    parser.add_argument("--batch", type=int, default=10, help="jobs per claim and settle")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds on each table (medians shown)")
    parser.add_argument("--child", choices=["empty", "full"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    # Rounds alternate between the two tables, so a neighbour's burst of load
    # lands on both; each figure is the median of its rounds.
    rounds = [
        (run_child("empty", args, args.keep or n > 0), run_child("full", args, args.keep or n > 0))
        for n in range(args.rounds)
    ]
    empty = {
        name: [statistics.median(r[0][name][0] for r in rounds), "; ".join(r[0][name][1] for r in rounds)]
        for name in rounds[0][0]
    }
    full = {
        name: [statistics.median(r[1][name][0] for r in rounds), "; ".join(r[1][name][1] for r in rounds)]
        for name in rounds[0][1]
    }
    print(f"\n{'':<32} {'empty':>9} {'full':>9} {'full/empty':>10}  verdict   (load: empty rounds | full rounds)")
    for name, (value, load_empty) in empty.items():
        other, load_full = full[name]
        ratio = other / value if value else float("nan")
        print(
            f"{name:<32} {value:>9.2f} {other:>9.2f} {ratio:>10.2f}  {verdict(name, value, other):<9} "
            f"({load_empty} | {load_full})"
        )


if __name__ == "__main__":
    main()
