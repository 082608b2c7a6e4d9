"""Workers and paused tags in the admin."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from ..models import TagState, Worker
from .guards import GuardedModelAdmin


@admin.register(Worker)
class WorkerAdmin(GuardedModelAdmin):
    list_display = (
        "name",
        "state",
        "host",
        "pid",
        "tags",
        "concurrency",
        "started_at",
        "last_heartbeat",
        "jobs_done",
        "runaway_threads",
        "stopping_jobs",
    )
    list_filter = ("state",)
    search_fields = ("name", "host")
    readonly_fields = [field.name for field in Worker._meta.fields]
    ordering = ("-started_at",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(TagState)
class TagStateAdmin(GuardedModelAdmin):
    list_display = ("tag", "paused", "changed_at")
    list_editable = ("paused",)
