"""The job list's actions: each asks for confirmation, then works in batches.

Selecting "all N jobs" (Django's select-across) applies the action to every job
matching the current filters, not just the page; the work is done by
:mod:`django_kinetik.bulk` in short batches. Jobs in a state where the action
makes no sense are skipped and counted in the message.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import reverse

from .. import bulk
from ..models import FINISHED_STATUSES, LIVE_STATUSES, RETRYABLE_STATUSES, Job
from ..templatetags.kinetik_admin import trail


@dataclass(frozen=True)
class BulkAction:
    name: str
    #: "Cancel", "Retry"... for the page title and the button
    verb: str
    #: "cancelled", "queued again"... for the message: "7 jobs queued again."
    done: str
    applies_to: tuple[str, ...]
    operation: Callable[[QuerySet[Job]], bulk.BulkResult]
    permission: str
    description: str


ACTIONS = [
    BulkAction("cancel_jobs", "Cancel", "cancelled", LIVE_STATUSES, bulk.cancel_all, "cancel", "Cancel selected jobs"),
    BulkAction(
        "retry_jobs", "Retry", "queued again", RETRYABLE_STATUSES, bulk.retry_all, "retry", "Retry selected jobs"
    ),
    BulkAction(
        "run_jobs_now",
        "Run now",
        "queued to run now",
        bulk.RUNNABLE_NOW,
        bulk.run_now_all,
        "change",
        "Run selected jobs now",
    ),
    # Named like Django's own delete action so it takes that one's place: Django's
    # collects every related row in memory; this one deletes in batches.
    BulkAction(
        "delete_selected", "Delete", "deleted", bulk.DELETABLE, bulk.delete_all, "delete", "Delete selected jobs"
    ),
]


def make_action(spec: BulkAction) -> Callable[..., Any]:
    def action(model_admin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Job]) -> Any:
        if request.POST.get("confirmed") == "yes":
            result = spec.operation(queryset)
            message = f"{_jobs(result.changed)} {spec.done}."
            if result.skipped:
                message += f" {_jobs(result.skipped)} skipped: in a state where that makes no sense."
            model_admin.message_user(request, message, messages.SUCCESS if result.changed else messages.WARNING)
            return None
        return confirmation_page(model_admin, request, queryset, spec)

    action.__name__ = spec.name
    return admin.action(description=spec.description, permissions=[spec.permission])(action)


def _jobs(count: int) -> str:
    return f"{count} job{'s' if count != 1 else ''}"


def confirmation_page(
    model_admin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Job], spec: BulkAction
) -> TemplateResponse:
    by_status = dict(queryset.order_by().values_list("status").annotate(n=Count("id")))
    total = sum(by_status.values())
    eligible = sum(count for status, count in by_status.items() if status in spec.applies_to)
    opts = model_admin.model._meta
    context = {
        **model_admin.admin_site.each_context(request),
        "title": f"{spec.verb} jobs",
        "opts": opts,
        "crumbs": trail(opts, ("Jobs", reverse("admin:django_kinetik_job_changelist")), (f"{spec.verb} jobs", "")),
        "spec": spec,
        "total": total,
        "eligible": eligible,
        "skipped": total - eligible,
        "by_status": sorted(by_status.items()),
        "sample": queryset.select_related("worker")[:20],
        "select_across": request.POST.get("select_across") == "1",
        "selected": request.POST.getlist(ACTION_CHECKBOX_NAME),
        "action_checkbox_name": ACTION_CHECKBOX_NAME,
        "finished_statuses": FINISHED_STATUSES,
    }
    return TemplateResponse(request, "admin/django_kinetik/job/confirm_action.html", context)
