"""The job list and its views: the Django admin as the queue's UI.

Built for a million rows: no full ``COUNT(*)`` (estimated counts), filters
whose choices cost no query, one query for the page (workers joined), a date
drill-down from two index look-ups, and an index behind every filter.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, path
from django.utils.html import format_html

from ..models import LIVE_STATUSES, Job, Status
from ..templatetags.kinetik_admin import kinetik_duration, kinetik_short_time, status_badge
from . import dashboard, detail
from .actions import ACTIONS, make_action
from .filters import JobChangeList, StatusFilter, TagFilter, TaskFilter
from .guards import GuardedModelAdmin, integer_id
from .pagination import EstimatedCountPaginator


@admin.register(Job)
class JobAdmin(GuardedModelAdmin):
    # Fits a 1280 px screen beside the admin's sidebar and the filters (631 px):
    # compact times, progress and attempts beside the status, long names cut
    # short (whole on hover); priority and the exact times are on the job's page.
    list_display = ("id", "task_name", "tag_name", "status_badge", "created", "duration", "worker_name")
    list_display_links = ("id", "task_name")
    list_filter = (StatusFilter, TagFilter, TaskFilter, ("created_at", admin.DateFieldListFilter))
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

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return JobChangeList

    @admin.display(description="task", ordering="task")
    def task_name(self, job: Job) -> str:
        return format_html('<span class="kinetik-cut kinetik-cut-task" title="{}">{}</span>', job.task, job.task)

    @admin.display(description="tag", ordering="tag")
    def tag_name(self, job: Job) -> str:
        return format_html('<span class="kinetik-cut kinetik-cut-tag" title="{}">{}</span>', job.tag, job.tag)

    @admin.display(description="status", ordering="status")
    def status_badge(self, job: Job) -> str:
        shown = status_badge(job)
        if job.progress_percent is not None and job.status in LIVE_STATUSES:
            shown = format_html(
                '{} <span title="{} of {}">{}%</span>',
                shown,
                f"{job.progress_current:g}",
                f"{job.progress_total:g}",
                f"{job.progress_percent:.0f}",
            )
        if job.attempts > 1:
            shown = format_html(
                '{} <span class="kinetik-muted" title="{} attempts">&times;{}</span>', shown, job.attempts, job.attempts
            )
        if job.waiting_reason:
            shown = format_html(
                '{}<br><span class="kinetik-muted kinetik-waiting" title="{}">waiting for its code</span>',
                shown,
                job.waiting_reason,
            )
        return shown

    @admin.display(description="created", ordering="created_at")
    def created(self, job: Job) -> str:
        created = kinetik_short_time(job.created_at)
        if job.status == Status.DELAYED:
            return format_html(
                '{}<br><span class="kinetik-muted">runs {}</span>', created, kinetik_short_time(job.run_at)
            )
        return created

    @admin.display(description="took")
    def duration(self, job: Job) -> str:
        took = kinetik_duration(job.duration)
        return format_html('<span class="kinetik-cut kinetik-cut-took" title="{}">{}</span>', took, took)

    @admin.display(description="worker", ordering="worker__name")
    def worker_name(self, job: Job) -> str:
        if job.worker is None:
            return "-"
        worker = job.worker
        return format_html(
            '<span class="kinetik-cut kinetik-cut-worker" title="{}">{}:{}</span>', worker.name, worker.host, worker.pid
        )

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
