"""The job list and its views: the Django admin as the queue's UI.

Built for a million rows: no full ``COUNT(*)`` (estimated counts), filters
whose choices cost no query, one query for the page (workers joined), a date
drill-down from two index look-ups, and an index behind every filter.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, path

from ..models import Job
from ..templatetags.kinetik_admin import kinetik_duration, kinetik_time, progress_bar, status_badge
from . import dashboard, detail
from .actions import ACTIONS, make_action
from .filters import TagFilter, TaskFilter
from .guards import GuardedModelAdmin, integer_id
from .pagination import EstimatedCountPaginator


@admin.register(Job)
class JobAdmin(GuardedModelAdmin):
    list_display = (
        "id",
        "task",
        "tag",
        "status_badge",
        "priority",
        "attempts",
        "progress",
        "created",
        "runs_at",
        "duration",
        "worker",
    )
    list_display_links = ("id", "task")
    list_filter = ("status", TagFilter, TaskFilter, ("created_at", admin.DateFieldListFilter))
    # The search itself is get_search_results; a field here turns the box on.
    search_fields = ("task",)
    search_help_text = "A job id (a number), or text in the task name or the job's data."
    date_hierarchy = "created_at"
    list_select_related = ("worker",)
    ordering = ("-id",)
    list_per_page = 50
    show_full_result_count = False
    # Facet counts are one COUNT per filter choice: a full scan each at a million rows.
    show_facets = admin.ShowFacets.NEVER
    paginator = EstimatedCountPaginator
    actions = [make_action(spec) for spec in ACTIONS]

    class Media:
        css = {"all": ("django_kinetik/admin.css",)}

    # -- permissions ---------------------------------------------------------

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # jobs are created by code (kinetik.create), not typed in

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(f"{self.opts.app_label}.cancel_job")

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(f"{self.opts.app_label}.retry_job")

    # -- the list ------------------------------------------------------------

    @admin.display(description="status", ordering="status")
    def status_badge(self, job: Job) -> str:
        return status_badge(job)

    @admin.display(description="progress")
    def progress(self, job: Job) -> str:
        return progress_bar(job)

    @admin.display(description="created", ordering="created_at")
    def created(self, job: Job) -> str:
        return kinetik_time(job.created_at)

    @admin.display(description="runs at", ordering="run_at")
    def runs_at(self, job: Job) -> str:
        return kinetik_time(job.run_at)

    @admin.display(description="duration")
    def duration(self, job: Job) -> str:
        return kinetik_duration(job.duration)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Job], search_term: str
    ) -> tuple[QuerySet[Job], bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        if not self.searchable(request, term):
            return queryset.none(), False
        job_id = integer_id(term.lstrip("#"), Job._meta.pk)
        if job_id is not None:
            # A number is a job id: one primary-key look-up, not a scan of every job's data.
            return queryset.filter(pk=job_id), False
        return queryset.filter(Q(task__icontains=term) | Q(data__icontains=term)), False

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        return super().changelist_view(request, {"kinetik_dashboard": True, **(extra_context or {})})

    # -- one job and the dashboard -------------------------------------------

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        return detail.detail_view(self, request, object_id)

    def get_urls(self) -> list[URLPattern]:
        def view(function: Any, name: str, route: str) -> URLPattern:
            wrapped = self.admin_site.admin_view(
                lambda request, *args, **kwargs: function(self, request, *args, **kwargs)
            )
            return path(route, wrapped, name=f"django_kinetik_job_{name}")

        return [
            view(dashboard.dashboard_view, "dashboard", "dashboard/"),
            view(detail.cancel_view, "cancel", "<path:object_id>/cancel/"),
            view(detail.retry_view, "retry", "<path:object_id>/retry/"),
            view(detail.edit_retry_view, "edit_retry", "<path:object_id>/edit-retry/"),
            view(detail.live_view, "live", "<path:object_id>/live/"),
            view(detail.events_view, "events", "<path:object_id>/events/"),
            *super().get_urls(),
        ]
