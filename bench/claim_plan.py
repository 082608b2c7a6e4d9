#!/usr/bin/env python3
"""Show the claim's PostgreSQL plan and cost with many finished jobs in the table.

    python bench/claim_plan.py --finished 1000000 --queued 10000

Fills the benchmark database with finished jobs (one INSERT ... SELECT), then
prints EXPLAIN (ANALYZE, BUFFERS) of the claim statement, run inside a
transaction that is rolled back, and the claim's median time over 200 runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
os.environ["KINETIK_BENCH_DB"] = "postgres"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--finished", type=int, default=1_000_000)
    parser.add_argument("--queued", type=int, default=10_000)
    args = parser.parse_args()

    import django

    django.setup()
    from bench.throughput import prepare_database

    prepare_database("postgres")
    from django.db import connection, transaction
    from django.utils import timezone

    from django_kinetik.backends.sql import POSTGRES_CLAIM
    from django_kinetik.models import Job

    table = Job._meta.db_table
    with connection.cursor() as cursor:
        started = time.perf_counter()
        cursor.execute(
            f"""INSERT INTO {table} (task, tag, priority, status, data, options, error, error_code,
                    attempts, run_at, created_at, started_at, finished_at)
                SELECT 'bench.noop', CASE WHEN g %% 2 = 0 THEN 'bench' ELSE 'other' END, 0,
                       CASE WHEN g %% 50 = 0 THEN 'failed' ELSE 'completed' END, '{{}}', '{{}}', '', '',
                       1, now(), now(), now(), now()
                FROM generate_series(1, %s) AS g""",
            [args.finished],
        )
        cursor.execute(
            f"""INSERT INTO {table} (task, tag, priority, status, data, options, error, error_code,
                    attempts, run_at, created_at)
                SELECT 'bench.noop', 'bench', (g %% 3) * 5, 'queued', '{{}}', '{{}}', '', '', 0, now(), now()
                FROM generate_series(1, %s) AS g""",
            [args.queued],
        )
        cursor.execute(f"ANALYZE {table}")
    print(f"filled {args.finished:,} finished + {args.queued:,} queued jobs in {time.perf_counter() - started:.1f}s\n")

    now = timezone.now()
    params = [now, 1, now, "bench", ["bench.noop"], 10]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + POSTGRES_CLAIM, params)
        print("\n".join(row[0] for row in cursor.fetchall()))
        transaction.set_rollback(True)

    timings = []
    for _ in range(200):
        with transaction.atomic(), connection.cursor() as cursor:
            started = time.perf_counter()
            cursor.execute(POSTGRES_CLAIM, params)
            cursor.fetchall()
            timings.append((time.perf_counter() - started) * 1000)
            transaction.set_rollback(True)
    print(
        f"\nclaim of 10 jobs: median {statistics.median(timings):.3f} ms over 200 runs "
        f"with {args.finished:,} finished jobs in the table"
    )


if __name__ == "__main__":
    main()
