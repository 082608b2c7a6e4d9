"""List filters whose choices cost no query.

Django's ``AllValuesFieldListFilter`` runs ``SELECT DISTINCT`` over the whole
table to build its choices, a full scan at a million rows. Tags and task
names are known without asking the database: the registry has them.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from ..registry import registry


class _RegistryFilter(admin.SimpleListFilter):
    field = ""

    def known(self) -> list[str]:
        raise NotImplementedError

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        values = self.known()
        current = self.value()
        if current and current not in values:
            values.append(current)  # a job of a task this process does not have
        return [(value, value) for value in sorted(values)]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value():
            return queryset.filter(**{self.field: self.value()})
        return queryset


class TagFilter(_RegistryFilter):
    title = "tag"
    parameter_name = field = "tag"

    def known(self) -> list[str]:
        return registry.tags()


class TaskFilter(_RegistryFilter):
    title = "task"
    parameter_name = field = "task"

    def known(self) -> list[str]:
        return registry.names()
