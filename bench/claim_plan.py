#!/usr/bin/env python3
"""Show the claim's PostgreSQL plan and cost with many finished jobs in the table.

    python bench/claim_plan.py --finished 1000000 --queued 10000
    python bench/claim_plan.py --sweep      # 10k, 100k, 1M finished jobs: is the cost flat?

Fills the benchmark database with finished jobs (one INSERT ... SELECT), then
prints EXPLAIN (ANALYZE, BUFFERS) of the claim statement, run inside a
transaction that is rolled back, and the claim's median time over 200 runs
(the database claim, and the Redis fast path's claim of ten known ids).
``--sweep`` grows the table from 10,000 to 1,000,000 finished jobs and prints
both medians at each size.
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
    parser.add_argument("--sweep", action="store_true", help="measure at 10k, 100k and 1M finished jobs")
    args = parser.parse_args()

    import django

    django.setup()
    from bench.throughput import prepare_database

    prepare_database("postgres")
    from django.db import connection, transaction
    from django.utils import timezone

    from django_kinetik.backends import get_backend
    from django_kinetik.backends.statements import POSTGRES_CLAIM, POSTGRES_CLAIM_IDS
    from django_kinetik.models import Job

    backend = get_backend("default")

    table = Job._meta.db_table

    def add_finished(count: int) -> None:
        with connection.cursor() as cursor:
            cursor.execute(
                f"""INSERT INTO {table} (task, tag, priority, status, data, options, error, error_code,
                        attempts, ghosts, run_at, created_at, started_at, finished_at)
                    SELECT 'bench.noop', CASE WHEN g %% 2 = 0 THEN 'bench' ELSE 'other' END, 0,
                           CASE WHEN g %% 50 = 0 THEN 'failed' ELSE 'completed' END, '{{}}', '{{}}', '', '',
                           1, 0, now(), now(), now(), now()
                    FROM generate_series(1, %s) AS g""",
                [count],
            )
            cursor.execute(f"ANALYZE {table}")

    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            f"""INSERT INTO {table} (task, tag, priority, status, data, options, error, error_code,
                    attempts, ghosts, run_at, created_at)
                SELECT 'bench.noop', 'bench', (g %% 3) * 5, 'queued', '{{}}', '{{}}', '', '', 0, 0, now(), now()
                FROM generate_series(1, %s) AS g""",
            [args.queued],
        )
        cursor.execute(f"SELECT id FROM {table} WHERE status = 'queued' ORDER BY id LIMIT 10")
        queued_ids = [row[0] for row in cursor.fetchall()]
    now = timezone.now()
    # The claim as a worker runs it; and, when TASKS has a kinetik backend, the
    # variant that also takes django.tasks jobs (statements.py's runnable condition).
    claim_statement, with_django_tasks = POSTGRES_CLAIM[False], POSTGRES_CLAIM[True]
    claim = [now, 1, now, ["bench"], ["bench.noop"], 10, 10]
    claim_django_tasks = [now, 1, now, ["bench"], ["bench.noop"], [""], 10, 10]
    claim_ids = [now, 1, now, queued_ids, ["bench.noop"]]

    def median_ms(statement: str, params: list) -> float:
        timings = []
        for _ in range(200):
            with transaction.atomic():
                started = time.perf_counter()
                backend.execute(statement, params)  # type: ignore[attr-defined]
                timings.append((time.perf_counter() - started) * 1000)
                transaction.set_rollback(True)
        return statistics.median(timings)

    if args.sweep:
        print(f"{args.queued:,} queued jobs; claim of 10, median of 200 runs (each rolled back)")
        print(
            f"{'finished jobs':>14} | {'database claim':>15} | {'with django.tasks on':>20} | "
            f"{'claim of known ids (Redis path)':>32}"
        )
        total = 0
        for size in (10_000, 100_000, 1_000_000):
            add_finished(size - total)
            total = size
            print(
                f"{size:>14,} | {median_ms(claim_statement, claim):>12.3f} ms | "
                f"{median_ms(with_django_tasks, claim_django_tasks):>17.3f} ms | "
                f"{median_ms(POSTGRES_CLAIM_IDS[False], claim_ids):>29.3f} ms",
                flush=True,
            )
        return

    add_finished(args.finished)
    print(f"filled {args.finished:,} finished + {args.queued:,} queued jobs in {time.perf_counter() - started:.1f}s\n")
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + claim_statement, claim)
        print("\n".join(row[0] for row in cursor.fetchall()))
        transaction.set_rollback(True)
    print(
        f"\nclaim of 10 jobs: median {median_ms(claim_statement, claim):.3f} ms over 200 runs "
        f"with {args.finished:,} finished jobs in the table (with django.tasks on: "
        f"{median_ms(with_django_tasks, claim_django_tasks):.3f} ms); of 10 known ids (Redis path): "
        f"{median_ms(POSTGRES_CLAIM_IDS[False], claim_ids):.3f} ms"
    )


if __name__ == "__main__":
    main()
