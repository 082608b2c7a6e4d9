#!/usr/bin/env python3
"""Does autovacuum keep up with a queue that drains all day? Dead row versions over time (PostgreSQL).

    python bench/soak_vacuum.py                         # an hour
    python bench/soak_vacuum.py --minutes 5             # a short look
    PGPORT=55419 python bench/soak_vacuum.py            # on a server of your own (see below)

One ``kinetik_worker bench`` at its defaults drains no-op jobs for
``--minutes`` while this process keeps the queue topped up (``create_many``
batches whenever fewer than ``--depth`` are queued), with the purge on and
short (``PURGE_AFTER`` ``--purge-after``, 2 minutes by default), so every job
is inserted, claimed, settled and deleted within minutes: the table's whole
churn, at the rate the worker drains. Every ``--every`` seconds (30) it prints,
for the job and run tables, ``n_live_tup``, ``n_dead_tup``, the share of dead
versions, the autovacuum count and how long ago the last one finished, and the
table size, with the jobs run per second and the load average since the last
sample. At the end it says whether autovacuum kept up in the steady state (the
samples from PURGE_AFTER plus a minute on, once the purge deletes and
autovacuum has had its first look): it ran on both tables, and the dead
versions of the second half stayed within 1.5 times the first half's peak
(no upward trend).

Autovacuum must be on for this to mean anything: the script refuses a
server where it is off (a test server often has it off; start a stock
PostgreSQL of your own on another port and point PGPORT at it). The database
is ``kinetik_bigtable_soak``, made afresh unless ``--keep``.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TABLES = ("django_kinetik_job", "django_kinetik_jobrun")
SAMPLE = """
SELECT relname, n_live_tup, n_dead_tup, autovacuum_count, extract(epoch FROM now() - last_autovacuum),
       pg_total_relation_size(relid)
FROM pg_stat_user_tables WHERE relname = ANY(%s)
"""


def sample() -> dict[str, tuple]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(SAMPLE, [list(TABLES)])
        return {row[0]: row[1:] for row in cursor.fetchall()}


def newest_run() -> int:
    from django.db.models import Max

    from django_kinetik.models import JobRun

    return JobRun.objects.aggregate(newest=Max("id"))["newest"] or 0


def top_up(depth: int, batch: int) -> None:
    import django_kinetik as kinetik
    from django_kinetik.models import Job

    queued = Job.objects.filter(status="queued").count()  # on the partial claim index
    while queued < depth:
        kinetik.create_many("bench.noop", [{"n": 1}] * batch)
        queued += batch


def line(elapsed: float, rate: float, stats: dict[str, tuple]) -> str:
    parts = [f"{elapsed / 60:>5.1f} min  {rate:>6,.0f} jobs/s  load {os.getloadavg()[0]:>4.2f}"]
    for table in TABLES:
        live, dead, vacuums, since, size = stats.get(table, (0, 0, 0, None, 0))
        share = 100 * dead / max(1, live + dead)
        ago = f"{since:>5.0f}s ago" if since is not None else "   never  "
        parts.append(f"{live:>9,} live {dead:>9,} dead ({share:>4.1f}%) av {vacuums:>3} {ago} {size / 2**20:>6.0f} MB")
    return " | ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--every", type=float, default=30.0, help="seconds between samples")
    parser.add_argument("--purge-after", default="2m", help="PURGE_AFTER for the worker")
    parser.add_argument("--depth", type=int, default=20_000, help="keep at least this many jobs queued")
    parser.add_argument("--batch", type=int, default=5_000, help="jobs per create_many when topping up")
    parser.add_argument("--keep", action="store_true", help="use the database as it is")
    args = parser.parse_args()

    os.environ.update(
        DJANGO_SETTINGS_MODULE="bench.settings",
        KINETIK_BENCH_DB="postgres",
        KINETIK_BENCH_PG_NAME="kinetik_bigtable_soak",
        KINETIK_BENCH_PURGE_AFTER=args.purge_after,
        PYTHONPATH=str(ROOT),
    )
    import django

    django.setup()
    from django.db import connection

    from bench.throughput import prepare_database, worker

    if not args.keep:
        prepare_database("postgres")
    with connection.cursor() as cursor:
        cursor.execute("SHOW autovacuum")
        if cursor.fetchone()[0] != "on":
            sys.exit("autovacuum is off on this server: nothing to measure (see --help for a server of your own).")
    top_up(args.depth, args.batch)
    process = worker()
    print(
        f"soak: {args.minutes:g} min, PURGE_AFTER {args.purge_after}, at least {args.depth:,} queued, "
        f"a sample every {args.every:g}s; per table: live, dead (share), autovacuums, last one, size",
        flush=True,
    )
    started = last_sample = time.monotonic()
    last_run = newest_run()
    history: list[tuple[float, dict[str, tuple]]] = []
    try:
        while time.monotonic() - started < args.minutes * 60:
            assert process.poll() is None, f"the worker exited {process.returncode}"
            top_up(args.depth, args.batch)
            now = time.monotonic()
            if now - last_sample >= args.every:
                run = newest_run()
                stats = sample()
                history.append((now - started, stats))
                print(line(now - started, (run - last_run) / (now - last_sample), stats), flush=True)
                last_sample, last_run = now, run
            time.sleep(0.5)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    from django_kinetik.conf import get_settings

    # Until the first jobs pass PURGE_AFTER nothing is deleted, and autovacuum
    # looks every minute: the verdict is on the steady state after both.
    verdict([stats for at, stats in history if at >= (get_settings().purge_after or 0) + 60])


def verdict(history: list[dict[str, tuple]]) -> None:
    if len(history) < 4:
        print("too few samples after the purge started (PURGE_AFTER + 1 min) for a verdict")
        return
    half = len(history) // 2
    for table in TABLES:
        dead = [stats[table][1] for stats in history]
        vacuums = history[-1][table][2] - history[0][table][2]
        early, late = max(dead[:half]), max(dead[half:])
        kept_up = vacuums > 0 and late <= 1.5 * max(early, 1000)
        print(
            f"{table}: autovacuum ran {vacuums} time(s); dead versions peak {early:,} in the first half, "
            f"{late:,} in the second (median {statistics.median(dead[half:]):,.0f}): "
            f"{'kept up' if kept_up else 'DID NOT KEEP UP'}"
        )


if __name__ == "__main__":
    main()
