"""The Django admin as the job UI: browse, filter, search, cancel, retry, run now."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html

from . import jobs
from .exceptions import InvalidTransition
from .models import Job, JobLog, JobRun, Status, TagState, Worker

STATUS_COLOURS: dict[str, str] = {
    Status.QUEUED: "#417690",
    Status.DELAYED: "#8a6d3b",
    Status.ACTIVE: "#2a7ae2",
    Status.COMPLETED: "#2e7d32",
    Status.FAILED: "#c62828",
    Status.TIMEOUT: "#ad1457",
    Status.CANCELLED: "#757575",
}


class JobRunInline(admin.TabularInline):
    model = JobRun
    extra = 0
    can_delete = False
    fields = ("attempt", "outcome", "worker", "started_at", "finished_at", "error_code", "error")
    readonly_fields = fields
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class JobLogInline(admin.TabularInline):
    model = JobLog
    extra = 0
    can_delete = False
    fields = ("created_at", "attempt", "message", "data")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "task",
        "tag",
        "status_badge",
        "priority",
        "attempts",
        "progress",
        "created_at",
        "run_at",
        "worker",
    )
    list_filter = ("status", "tag", "task")
    search_fields = ("=id", "task")
    list_select_related = ("worker",)
    ordering = ("-id",)
    show_full_result_count = False
    readonly_fields = [field.name for field in Job._meta.fields]
    inlines = [JobRunInline, JobLogInline]
    actions = ["cancel_jobs", "retry_jobs", "run_jobs_now"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="status", ordering="status")
    def status_badge(self, job: Job) -> str:
        return format_html(
            '<span style="background:{};color:#fff;padding:1px 8px;border-radius:8px">{}</span>',
            STATUS_COLOURS.get(job.status, "#555"),
            job.get_status_display(),
        )

    @admin.display(description="progress")
    def progress(self, job: Job) -> str:
        percent = job.progress_percent
        if percent is None:
            return "-"
        return format_html('<progress value="{}" max="100" title="{}%"></progress>', f"{percent:.0f}", f"{percent:.0f}")

    def _apply(self, request: HttpRequest, queryset: QuerySet[Job], action: Any, verb: str) -> None:
        changed = skipped = 0
        for job in queryset:
            try:
                action(job)
                changed += 1
            except InvalidTransition:
                skipped += 1
        message = f"{verb} {changed} job(s)."
        if skipped:
            message += f" Skipped {skipped} job(s) in a state where that makes no sense."
        self.message_user(request, message, messages.SUCCESS if changed else messages.WARNING)

    @admin.action(description="Cancel selected jobs", permissions=["change"])
    def cancel_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        self._apply(request, queryset, jobs.cancel, "Cancelled")

    @admin.action(description="Retry selected jobs", permissions=["change"])
    def retry_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        self._apply(request, queryset, jobs.retry, "Retried")

    @admin.action(description="Run selected jobs now", permissions=["change"])
    def run_jobs_now(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        updated = queryset.filter(status=Status.DELAYED).update(status=Status.QUEUED, run_at=timezone.now())
        self.message_user(request, f"Queued {updated} delayed job(s) to run now.")


@admin.register(Worker)
class WorkerAdmin(admin.ModelAdmin):
    list_display = ("name", "state", "host", "pid", "tags", "concurrency", "started_at", "last_heartbeat", "jobs_done")
    list_filter = ("state", "host")
    readonly_fields = [field.name for field in Worker._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(TagState)
class TagStateAdmin(admin.ModelAdmin):
    list_display = ("tag", "paused", "changed_at")
