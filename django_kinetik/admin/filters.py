"""List filters whose choices come from the data, by index look-ups.

Django's ``AllValuesFieldListFilter`` runs ``SELECT DISTINCT`` over the whole
table, a full scan at a million rows. The registry is no substitute: a
django.tasks job's tag, or a task another service defines, is in the data
but not in this process. So the distinct values are read from the indexes on
``tag`` and ``task`` (``kinetik_job_tag``, ``kinetik_job_task``), one seek per
value: a "loose index scan", written as a recursive query on PostgreSQL and
SQLite; MySQL and MariaDB do that scan themselves for ``DISTINCT`` on an
index's leading column.

Each filter also has to be read through its index. A page is "the newest 50
with tag = x", and PostgreSQL's planner, which takes matching rows to be
spread evenly, walks the primary key backwards instead, filtering, as long
as it thinks the matches are common: after a burst of another tag's jobs it
read the 30,000 newest rows (130 ms at 5 million jobs, 450 ms from disk) to
find 50. So on PostgreSQL a filter is written ``tag = ANY(ARRAY['x'])`` and
the page ordered by ``tag, -id``: the same rows in the same order, but the
planner no longer sees the tag as fixed, so only the ``(tag, -id)`` index
gives that order without a sort (``JobChangeList``).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db import connections
from django.db.models import BooleanField, Model, QuerySet
from django.db.models.expressions import RawSQL
from django.http import HttpRequest

from ..models import FINISHED_STATUSES, Job, Status
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


def equal(queryset: QuerySet[Any], field: str, value: str) -> QuerySet[Any]:
    """``queryset`` where ``field`` is ``value``; on PostgreSQL as ``= ANY`` (see the module's docstring)."""
    connection = connections[queryset.db]
    if connection.vendor != "postgresql":
        return queryset.filter(**{field: value})
    quote = connection.ops.quote_name
    column = f"{quote(queryset.model._meta.db_table)}.{quote(queryset.model._meta.get_field(field).column)}"  # type: ignore[union-attr,arg-type]
    return queryset.filter(RawSQL(f"{column} = ANY(%s)", ([value],), output_field=BooleanField()))


class _IndexedFilter(admin.SimpleListFilter):
    """A filter on a column some index leads with, followed by ``-id``."""

    field = ""

    def leads_index(self) -> bool:
        """Whether a ``(field, -id)`` index holds every row this filter keeps."""
        return bool(self.value())

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value():
            return equal(queryset, self.field, str(self.value()))
        return queryset


class StatusFilter(_IndexedFilter):
    """Django's choices filter for ``status`` (same parameter, ``status__exact``), read through an index."""

    title = "status"
    parameter_name = "status__exact"
    field = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return list(Status.choices)

    def leads_index(self) -> bool:
        # kinetik_job_outcome (status, -id) holds finished jobs only; live ones are few and recent.
        return self.value() in FINISHED_STATUSES

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


class JobChangeList(GuardedChangeList):
    """The job list, its page ordered by the index of the filter that leads (PostgreSQL; module docstring)."""

    def get_queryset(self, request: HttpRequest, exclude_parameters: Any = None) -> QuerySet[Any]:
        queryset = super().get_queryset(request, exclude_parameters)
        if connections[queryset.db].vendor != "postgresql" or set(queryset.query.order_by) != {"-id"}:
            return queryset  # another database, or the user sorted by a column
        leading = [spec.field for spec in self.filter_specs if isinstance(spec, _IndexedFilter) and spec.leads_index()]
        if leading:
            # tag and task first: their indexes hold every job
            return queryset.order_by(sorted(leading, key=("tag", "task", "status").index)[0], "-id")
        return queryset
