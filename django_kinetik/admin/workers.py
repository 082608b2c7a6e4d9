"""Workers in the admin: what each is doing now, read-only.

A worker's row is its own report (heartbeats, counts); nobody edits it. A
live worker cannot be deleted either: it goes on writing to its row, and its
running jobs point at it. A stopped or lost one can, to tidy up. A worker that has not beaten its heart
for longer than a lease (``KINETIK["LEASE"]``) is shown as lost, whatever
its row still says: it was killed, or its host went away.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.safestring import mark_safe

from ..conf import get_settings
from ..models import Worker
from ..templatetags.kinetik_admin import kinetik_age, kinetik_short_time
from .guards import GuardedModelAdmin

RUNNING_STATES = (Worker.State.ONLINE, Worker.State.STOPPING)


def is_live(worker: Worker) -> bool:
    since = timezone.now() - timedelta(seconds=get_settings().lease)
    return worker.state in RUNNING_STATES and worker.last_heartbeat >= since


def state_of(worker: Worker) -> str:
    """Online, Stopping, Offline, or Lost: a running state is only believed while the heartbeats come."""
    if worker.state in RUNNING_STATES and not is_live(worker):
        return "Lost"
    return str(Worker.State(worker.state).label)


@admin.register(Worker)
class WorkerAdmin(GuardedModelAdmin):
    # A name is "host:pid:suffix" already; the runaway and stopping counts are on the worker's page.
    list_display = ("name", "shown_state", "tag_list", "threads", "started", "heartbeat", "jobs_done")
    list_filter = ("state",)
    search_fields = ("name", "host")
    fields = (
        "name",
        "shown_state",
        "host",
        "pid",
        "tag_list",
        "concurrency",
        "started",
        "heartbeat",
        "stopped_at",
        "jobs_done",
        "runaway_threads",
        "stopping_jobs",
    )
    readonly_fields = fields
    ordering = ("-started_at",)

    class Media:
        css = {"all": ("django_kinetik/admin.css",)}

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # the worker writes its row; the page only shows it

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and is_live(obj):
            return False
        return super().has_delete_permission(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Worker]) -> None:
        # Django's bulk delete asks has_delete_permission per row only to list what it
        # would refuse; a live worker slipping in between is left alone here too.
        since = timezone.now() - timedelta(seconds=get_settings().lease)
        queryset.exclude(state__in=RUNNING_STATES, last_heartbeat__gte=since).delete()

    @admin.display(description="state", ordering="state")
    def shown_state(self, worker: Worker) -> str:
        state = state_of(worker)
        if state == "Lost":
            return mark_safe(
                '<span class="kinetik-state-lost" title="no heartbeat for longer than a lease">Lost</span>'
            )
        return state

    @admin.display(description="threads", ordering="concurrency")
    def threads(self, worker: Worker) -> int:
        return worker.concurrency

    @admin.display(description="tags")
    def tag_list(self, worker: Worker) -> str:
        return ", ".join(worker.tags or [])

    @admin.display(description="started", ordering="started_at")
    def started(self, worker: Worker) -> str:
        return kinetik_short_time(worker.started_at)

    @admin.display(description="last heartbeat", ordering="last_heartbeat")
    def heartbeat(self, worker: Worker) -> str:
        return kinetik_age(worker.last_heartbeat)
