"""Counts the admin can afford at a million rows.

``COUNT(*)`` over a large job table reads every row. On PostgreSQL the list
instead asks the planner: the table's row estimate when unfiltered, the
plan's row estimate when filtered, and counts exactly only when the estimate
says the answer is small. Elsewhere (SQLite, MySQL) it counts.
"""

from __future__ import annotations

from functools import cached_property

from django.core.exceptions import EmptyResultSet
from django.core.paginator import Paginator

from ..backends import get_backend

#: below this many (estimated) rows, count exactly
EXACT_BELOW = 10_000


def estimated_count(queryset) -> int | None:  # type: ignore[no-untyped-def]
    """The planner's row estimate for ``queryset`` where the database has one (PostgreSQL), else None."""
    try:
        return get_backend(queryset.db).estimated_count(queryset)
    except EmptyResultSet:
        # A filter no row can match (a search that is refused, ``.none()``) compiles to no SQL to explain.
        return 0


class EstimatedCountPaginator(Paginator):
    """A paginator whose ``count`` is estimated when it is large (PostgreSQL)."""

    @cached_property
    def count(self) -> int:
        estimate = estimated_count(self.object_list)
        if estimate is not None and estimate >= EXACT_BELOW:
            return estimate
        return super().count
