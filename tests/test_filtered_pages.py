"""A filtered page of jobs reads about as many rows as it shows, whatever came since (PostgreSQL).

The case that hurt: "the newest jobs with tag = x" after a burst of another
tag's jobs. Read by walking the primary key back from the newest job, the
page reads the whole burst before it finds its first match; read through the
``(tag, -id)`` index, only its own rows (``models/pages.py``). The admin's
list and ``GET api/jobs`` both must do the latter.
"""

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from django_kinetik.models import Job, Status
from tests.factories import FinishedJobFactory

pytestmark = [pytest.mark.postgresql, pytest.mark.django_db(transaction=True)]

API = "/kinetik/api/"
OLD, BURST = 2_000, 10_000


def _copies(job, count, **changes):
    """``count`` copies of ``job``'s row (new ids), with ``changes``: one statement, not ``count`` saves."""
    fields = [field for field in Job._meta.concrete_fields if not field.primary_key]
    columns = ", ".join(connection.ops.quote_name(field.column) for field in fields)
    values = ", ".join("%s" if field.name in changes else connection.ops.quote_name(field.column) for field in fields)
    params = [changes[field.name] for field in fields if field.name in changes]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {Job._meta.db_table} ({columns}) SELECT {values} FROM {Job._meta.db_table}"
            " CROSS JOIN generate_series(1, %s) WHERE id = %s",
            [*params, count, job.pk],
        )


@pytest.fixture
def burst_after_old_jobs():
    """OLD finished jobs of tag "old", then a burst of BURST of tag "burst", newer than all of them."""
    old = FinishedJobFactory(tag="old", task="test.old", status=Status.FAILED)
    _copies(old, OLD - 1)
    burst = FinishedJobFactory(tag="burst", task="test.burst", status=Status.COMPLETED)
    _copies(burst, BURST - 1)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {Job._meta.db_table}")


def _rows_read(sql):
    """Rows the plan's scans of the job table read (kept and filtered out), from EXPLAIN ANALYZE."""
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}")
        plan = cursor.fetchone()[0]
    plan = json.loads(plan) if isinstance(plan, str) else plan

    def walk(node):
        own = 0
        if node.get("Relation Name") == Job._meta.db_table:
            own = node.get("Actual Rows", 0) + node.get("Rows Removed by Filter", 0)
        return own + sum(walk(child) for child in node.get("Plans", []))

    return walk(plan[0]["Plan"])


def _page_query(get):
    """The SQL and parameters of the page's query of the job table, captured while ``get()`` answers."""
    with CaptureQueriesContext(connection) as captured:
        response = get()
    assert response.status_code == 200, response.content
    pages = [query["sql"] for query in captured if "LIMIT" in query["sql"] and Job._meta.db_table in query["sql"]]
    assert pages, [query["sql"] for query in captured]
    return pages[0]


# What each page may read: with one filter, about the page itself; with two, at most the rows that
# match both (the planner may read them all and sort them, when it knows how many there are), but
# never the burst.
ONE_FILTER, TWO_FILTERS = 300, OLD + 101


PAGES = [
    (f"{API}jobs?tag=old", ONE_FILTER),
    (f"{API}jobs?task=test.old", ONE_FILTER),
    (f"{API}jobs?status=failed", ONE_FILTER),
    (f"{API}jobs?tag=old&order=id", ONE_FILTER),
    (f"{API}jobs?tag=old&status=failed", TWO_FILTERS),
    ("/admin/django_kinetik/job/?tag=old", ONE_FILTER),
    ("/admin/django_kinetik/job/?task=test.old", ONE_FILTER),
    ("/admin/django_kinetik/job/?status__exact=failed", ONE_FILTER),
    ("/admin/django_kinetik/job/?tag=old&status__exact=failed", TWO_FILTERS),
]


def test_a_page_filtered_past_a_burst_reads_its_own_rows(burst_after_old_jobs, admin_client):
    """The API's pages and the admin's (one table of jobs for all: filling it is most of the time)."""
    too_many = {}
    for url, most in PAGES:
        sql = _page_query(lambda url=url: admin_client.get(url))
        # Captured SQL has its parameters inlined: it runs as it is.
        if (read := _rows_read(sql)) > most:
            too_many[url] = f"{read} rows read (at most {most}): {sql[sql.index(' FROM ') :]}"
    assert not too_many, too_many
