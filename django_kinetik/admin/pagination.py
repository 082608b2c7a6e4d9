"""Counts the admin can afford at a million rows.

``COUNT(*)`` over a large job table reads every row. On PostgreSQL the list
instead asks the planner: the table's row estimate when unfiltered, the
plan's row estimate when filtered, and counts exactly only when the estimate
says the answer is small. Elsewhere (SQLite, MySQL) it counts.
"""

from __future__ import annotations

import json
from functools import cached_property

from django.core.paginator import Paginator
from django.db import connections

#: below this many (estimated) rows, count exactly
EXACT_BELOW = 10_000


def estimated_count(queryset) -> int | None:  # type: ignore[no-untyped-def]
    """The planner's row estimate for ``queryset`` on PostgreSQL, else None."""
    connection = connections[queryset.db]
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        if not queryset.query.where:
            cursor.execute(
                "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass",
                [queryset.model._meta.db_table],
            )
            row = cursor.fetchone()
            if row and row[0] >= 0:  # -1: never analyzed
                return int(row[0])
        sql, params = queryset.order_by().values("pk").query.sql_with_params()
        cursor.execute("EXPLAIN (FORMAT JSON) " + sql, params)
        plan = cursor.fetchone()[0]
        if isinstance(plan, str):
            plan = json.loads(plan)
        return int(plan[0]["Plan"]["Plan Rows"])


class EstimatedCountPaginator(Paginator):
    """A paginator whose ``count`` is estimated when it is large (PostgreSQL)."""

    @cached_property
    def count(self) -> int:
        estimate = estimated_count(self.object_list)
        if estimate is not None and estimate >= EXACT_BELOW:
            return estimate
        return super().count
