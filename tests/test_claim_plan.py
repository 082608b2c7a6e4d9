"""The claim keeps its index when PostgreSQL's statistics are stale (a burst of new jobs)."""

import pytest
from django.db import connection, transaction
from django.utils import timezone

import django_kinetik as kinetik
from django_kinetik.backends.base import Runnable
from django_kinetik.backends.statements import POSTGRES_CLAIM
from django_kinetik.models import Job, Status

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgresql]


@pytest.mark.parametrize("django_tasks", [False, True], ids=["kinetik tasks", "with django.tasks jobs"])
def test_after_a_burst_on_stale_statistics_the_claim_still_reads_only_its_index(django_tasks):
    kinetik.create_many("test.echo", [{} for _ in range(3000)])
    Job.objects.update(status=Status.COMPLETED, finished_at=timezone.now())
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE django_kinetik_job")  # statistics: no queued job at all
    kinetik.create_many("test.echo", [{} for _ in range(5000)])  # then a burst arrives
    with transaction.atomic(), connection.cursor() as cursor:
        now = timezone.now()
        runnable = Runnable(("test.echo",), django_tasks=django_tasks)
        params = [now, 1, now, ["alpha"], *runnable.params(), 1, 1]
        cursor.execute("EXPLAIN " + POSTGRES_CLAIM[django_tasks], params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
        transaction.set_rollback(True)
    assert "kinetik_job_claim" in plan, plan
    assert "Sort" not in plan, plan
