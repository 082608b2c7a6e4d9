"""List filters whose choices come from the data, by index look-ups.

Django's ``AllValuesFieldListFilter`` runs ``SELECT DISTINCT`` over the whole
table, a full scan at a million rows. The registry is no substitute: a
django.tasks job's tag, or a task another service defines, is in the data
but not in this process. So the distinct values are read from the indexes on
``tag`` and ``task`` (``kinetik_job_tag``, ``kinetik_job_task``), one seek per
value: a "loose index scan", written as a recursive query on PostgreSQL and
SQLite; MySQL and MariaDB do that scan themselves for ``DISTINCT`` on an
index's leading column.

Each filter is also read through its index, as ``GET api/jobs`` is: on
PostgreSQL a filter is written ``tag = ANY(ARRAY['x'])`` and the page ordered
by ``tag, -id`` (``models/pages.py`` says why; ``JobChangeList``).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db import connections
from django.db.models import Model, QuerySet
from django.http import HttpRequest

from ..models import Job, Status
from ..models.pages import in_id_order, leading_column, reads_through_indexes, where
from .guards import GuardedChangeList

#: a filter longer than this is no help; the search box finds the rest
MOST_CHOICES = 200

# Each step seeks the next value after the last one found; a value's rows are never read.
_LOOSE_SCAN = """
WITH RECURSIVE walk (value, n) AS (
    SELECT MIN({column}), 1 FROM {table}
    UNION ALL
    SELECT (SELECT MIN({column}) FROM {table} WHERE {column} > walk.value), walk.n + 1
    FROM walk WHERE walk.value IS NOT NULL AND walk.n < %s
)
SELECT value FROM walk WHERE value IS NOT NULL
"""


def distinct_values(model: type[Model], field: str, using: str, limit: int = MOST_CHOICES) -> list[str]:
    """The first ``limit`` distinct values of ``model.field`` (an indexed column), in order."""
    connection = connections[using]
    column = connection.ops.quote_name(model._meta.get_field(field).column)  # type: ignore[union-attr,arg-type]
    table = connection.ops.quote_name(model._meta.db_table)
    if connection.vendor in ("postgresql", "sqlite"):
        sql, params = _LOOSE_SCAN.format(column=column, table=table), [limit]
    else:
        sql, params = f"SELECT DISTINCT {column} FROM {table} ORDER BY {column} LIMIT %s", [limit]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [row[0] for row in cursor.fetchall()]


class _IndexedFilter(admin.SimpleListFilter):
    """A filter on a column some index leads with, followed by ``-id``."""

    field = ""

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value():
            leads = self.field == leading_column(_chosen(request))
            return where(queryset, self.field, str(self.value()), leads=leads)
        return queryset


class StatusFilter(_IndexedFilter):
    """Django's choices filter for ``status`` (same parameter, ``status__exact``), read through an index."""

    title = "status"
    parameter_name = "status__exact"
    field = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return list(Status.choices)

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() and self.value() not in Status.values:
            return queryset.none()  # as Django's choices filter: no job has that status
        return super().queryset(request, queryset)


class _DataFilter(_IndexedFilter):
    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        values = distinct_values(Job, self.field, model_admin.get_queryset(request).db)
        current = self.value()
        if current and current not in values:
            values.append(current)  # beyond the first MOST_CHOICES, or a value no job has (any more)
        return [(value, value) for value in sorted(values)]


class TagFilter(_DataFilter):
    title = "tag"
    parameter_name = field = "tag"


class TaskFilter(_DataFilter):
    title = "task"
    parameter_name = field = "task"


def _chosen(request: HttpRequest) -> dict[str, str]:
    """The values chosen in the job list's indexed filters, by column."""
    return {
        each.field: request.GET[each.parameter_name]
        for each in (StatusFilter, TagFilter, TaskFilter)
        if request.GET.get(each.parameter_name)
    }


class JobChangeList(GuardedChangeList):
    """The job list, its page ordered by the index of the filter that leads (PostgreSQL; module docstring)."""

    def get_queryset(self, request: HttpRequest, exclude_parameters: Any = None) -> QuerySet[Any]:
        queryset = super().get_queryset(request, exclude_parameters)
        if not reads_through_indexes(queryset) or set(queryset.query.order_by) != {"-id"}:
            return queryset  # another database, or the user sorted by a column
        return in_id_order(queryset, _chosen(request), descending=True)
