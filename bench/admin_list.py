#!/usr/bin/env python3
"""The admin's job pages and the JSON API at a million rows on PostgreSQL: server time per page.

    python bench/admin_list.py                    # fills 1,000,000 jobs, then measures
    python bench/admin_list.py --rows 1000000 --keep   # reuse a filled database

Fills the benchmark database in one INSERT ... SELECT (90% completed, 4% failed,
3% queued, 1% delayed, 1% cancelled, 1% timeout; 5 tags, 10 tasks, 90 days of
creation times), analyzes it, then renders each page in-process with Django's
test client as a superuser and prints the median and worst of 15 renders (after
2 warm-ups): the time from request to full HTML, all queries included. Then the
same for the JSON API's reads (``kinetik/api/...``) and the metrics page.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
os.environ["KINETIK_BENCH_DB"] = "postgres"

FILL = """
INSERT INTO django_kinetik_job (task, tag, priority, status, data, options, error, error_code,
    attempts, ghosts, run_at, created_at, started_at, finished_at, progress_current, progress_total)
SELECT 'bench.task' || (g %% 10), 'tag' || (g %% 5), 0,
       CASE WHEN g %% 100 < 90 THEN 'completed' WHEN g %% 100 < 94 THEN 'failed'
            WHEN g %% 100 < 97 THEN 'queued' WHEN g %% 100 < 98 THEN 'delayed'
            WHEN g %% 100 < 99 THEN 'cancelled' ELSE 'timeout' END,
       jsonb_build_object('customer', 'customer-' || (g %% 5000), 'n', g), '{}',
       CASE WHEN g %% 100 BETWEEN 90 AND 93 THEN 'card declined' ELSE '' END, '',
       1, 0, created, created, created, created + interval '40 milliseconds', 1, 1
FROM (SELECT g, now() - (interval '90 days' * (1 - g::float / %s)) AS created
      FROM generate_series(1, %s) AS g) AS rows
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--keep", action="store_true", help="measure the database as it is")
    args = parser.parse_args()

    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client
    from django.utils import timezone

    from bench.throughput import prepare_database
    from django_kinetik.models import Job

    if not args.keep:
        prepare_database("postgres")
        started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute(FILL, [args.rows, args.rows])
            cursor.execute(
                "UPDATE django_kinetik_job SET finished_at = NULL, started_at = NULL "
                "WHERE status IN ('queued', 'delayed')"
            )
            cursor.execute("VACUUM ANALYZE django_kinetik_job")
        print(f"filled {args.rows:,} jobs in {time.perf_counter() - started:.0f}s")
    user = User.objects.filter(username="bench").first() or User.objects.create_superuser("bench", "", "bench")
    client = Client()
    client.force_login(user)
    year = Job.objects.order_by("-id").values_list("created_at", flat=True).first().year
    pages = [
        ("job list", ""),
        ("status = failed", "?status__exact=failed"),
        ("status = completed", "?status__exact=completed"),
        ("status = queued", "?status__exact=queued"),
        ("tag = tag3", "?tag=tag3"),
        ("task = bench.task7", "?task=bench.task7"),
        ("tag + status", "?tag=tag3&status__exact=failed"),
        ("created: past 7 days", "?created_at__gte=" + quote(str(timezone.now() - timedelta(days=7)))),
        ("date drill-down: year", f"?created_at__year={year}"),
        ("page 200", "?p=200"),
        ("search: job id", "?q=123456"),
        ("search: text in data", "?q=customer-4242"),
        ("job detail", f"/{Job.objects.order_by('-id').values_list('id', flat=True).first()}/change/"),
        ("dashboard", "/dashboard/"),
    ]
    middle = Job.objects.order_by("-id").values_list("id", flat=True)[args.rows // 2]
    newest = Job.objects.order_by("-id").values_list("id", flat=True).first()
    api = [
        ("api: jobs", "/kinetik/api/jobs"),
        ("api: status = failed", "/kinetik/api/jobs?status=failed"),
        ("api: status = queued", "/kinetik/api/jobs?status=queued"),
        ("api: tag = tag3", "/kinetik/api/jobs?tag=tag3"),
        ("api: task = bench.task7", "/kinetik/api/jobs?task=bench.task7"),
        ("api: tag + status", "/kinetik/api/jobs?tag=tag3&status=failed"),
        ("api: page at mid-table", f"/kinetik/api/jobs?after={middle}"),
        ("api: oldest first", "/kinetik/api/jobs?order=id"),
        ("api: one job", f"/kinetik/api/jobs/{newest}"),
        ("api: stats", "/kinetik/api/stats"),
        ("metrics", "/kinetik/metrics"),
    ]
    print(f"\n{'page':<24} {'median':>8} {'worst':>8}   (ms server time, {Job.objects.count():,} jobs)")
    for name, query in [*pages, *api]:
        path = (
            query
            if query.startswith("/kinetik/")
            else "/admin/django_kinetik/job" + (query if query.startswith("/") else "/" + query)
        )
        timings = []
        for attempt in range(17):
            started = time.perf_counter()
            response = client.get(path)
            elapsed = (time.perf_counter() - started) * 1000
            assert response.status_code == 200, (path, response.status_code)
            if attempt >= 2:
                timings.append(elapsed)
        print(f"{name:<24} {statistics.median(timings):>8.1f} {max(timings):>8.1f}")


if __name__ == "__main__":
    main()
