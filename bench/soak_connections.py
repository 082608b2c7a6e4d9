#!/usr/bin/env python3
"""Run many jobs through one worker and watch its PostgreSQL connections.

    python bench/soak_connections.py --jobs 100000 --concurrency 4

Every 20th job times out (its thread is abandoned and exits later) and every
10th raises, so the worker replaces threads and tidies connections along the
way. Prints the number of connections to the benchmark database every few
seconds and the minimum/maximum seen: it must stay flat, and the same at any
``--concurrency``: the worker's own connections (main loop, settler,
heartbeat, event publisher, wake-up listener: 5 at most; these jobs do not
query the database) plus this script's one.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
os.environ["KINETIK_BENCH_DB"] = "postgres"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()

    import django

    django.setup()
    from bench.throughput import prepare_database

    prepare_database("postgres")
    from django.db import connection

    import django_kinetik as kinetik
    from django_kinetik.models import Job

    kinds = ["ok"] * 17 + ["raise", "raise", "hang"]
    for start in range(0, args.jobs, 10_000):
        batch = min(10_000, args.jobs - start)
        kinetik.create_many("bench.mixed", [{"kind": kinds[(start + n) % 20]} for n in range(batch)])
    worker = subprocess.Popen(
        [sys.executable, "-m", "django", "kinetik_worker", "bench", "--concurrency", str(args.concurrency), "-v", "0"],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    seen = []
    started = time.monotonic()
    try:
        while True:
            with connection.cursor() as cursor:
                cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
                count = cursor.fetchone()[0]
                cursor.execute("SELECT count(*) FROM django_kinetik_job WHERE status IN ('queued', 'active')")
                left = cursor.fetchone()[0]
            seen.append(count)
            if len(seen) % 10 == 1:
                print(f"{time.monotonic() - started:6.0f}s  jobs left {left:>7,}  connections {count}", flush=True)
            if left == 0:
                break
            time.sleep(1)
    finally:
        worker.terminate()
        worker.wait()
    done = Job.objects.exclude(status__in=["queued", "active"]).count()
    print(
        f"\n{done:,} jobs in {time.monotonic() - started:.0f}s; connections min {min(seen)}, max {max(seen)} "
        f"(this script's own: 1; the worker runs {args.concurrency} job threads)"
    )


if __name__ == "__main__":
    main()
