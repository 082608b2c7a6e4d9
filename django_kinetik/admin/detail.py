"""One job's page: everything about it, its buttons, edit-and-retry, and live updates."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect, JsonResponse
from django.http.response import HttpResponseBase
from django.template.response import TemplateResponse
from django.urls import reverse

from .. import feed, jobs, lifecycle
from ..conf import get_settings
from ..exceptions import InvalidTransition
from ..feed import sse
from ..models import LIVE_STATUSES, RETRYABLE_STATUSES, Job, JobDependency, JobLog, Status
from ..templatetags.kinetik_admin import trail
from ..values.jsondata import MAX_DEPTH, ensure_json_object
from .guards import integer_id
from .tracebacks import fold_kinetik_frames

LOGS_PER_PAGE = 50
#: a job's children listed on its page (a fan-out can have thousands)
RELATED_SHOWN = 20


def _job(model_admin: admin.ModelAdmin, request: HttpRequest, object_id: str) -> Job:
    # Every view here gets the URL's text as it is: "abc", "1/2", "²", a number past the id column.
    job_id = integer_id(object_id, Job._meta.pk)
    job = None
    if job_id is not None:
        job = model_admin.get_queryset(request).select_related("worker").filter(pk=job_id).first()
    if job is None:
        raise Http404(f"There is no job {object_id!r}.")
    if not model_admin.has_view_or_change_permission(request, job):
        raise PermissionDenied
    return job


def detail_view(
    model_admin: Any,
    request: HttpRequest,
    object_id: str,
    *,
    data_text: str | None = None,
    data_error: str = "",
) -> TemplateResponse:
    job = _job(model_admin, request, object_id)
    logs = JobLog.objects.using(job._state.db).filter(job=job).order_by("id")
    paginator = Paginator(logs, LOGS_PER_PAGE)
    # A running job's newest lines matter most: open on the last page.
    page = paginator.get_page(request.GET.get("logs_page") or paginator.num_pages)
    runs = list(job.runs.select_related("worker").order_by("id"))
    arrows = JobDependency.objects.using(job._state.db)
    parents = [arrow.parent for arrow in arrows.filter(child=job).select_related("parent").order_by("id")]
    children = [
        arrow.child for arrow in arrows.filter(parent=job).select_related("child").order_by("id")[: RELATED_SHOWN + 1]
    ]
    last_run = runs[-1] if runs else None
    traceback, folded = fold_kinetik_frames(last_run.traceback) if last_run else ("", 0)
    opts = model_admin.model._meta
    context = {
        **model_admin.admin_site.each_context(request),
        "title": f"Job #{job.pk}: {job.task}",
        "opts": opts,
        "crumbs": trail(opts, ("Jobs", reverse("admin:django_kinetik_job_changelist")), (f"#{job.pk}", "")),
        "job": job,
        "runs": runs,
        # The attempt a worker is on now: it has no JobRun row until it ends.
        "running": job.status == Status.ACTIVE and job.started_at is not None,
        "parents": parents,
        "children": children[:RELATED_SHOWN],
        # Not counted: a fan-out may have thousands; "and more" is enough here.
        "more_children": "some" if len(children) > RELATED_SHOWN else "",
        "last_run": last_run,
        "traceback": traceback,
        "folded": folded,
        "logs": page,
        "last_log_id": page.object_list[len(page.object_list) - 1].pk if page.object_list else 0,
        "live": job.status in LIVE_STATUSES,
        "can_cancel": job.status in LIVE_STATUSES and model_admin.has_cancel_permission(request),
        "can_retry": job.status in RETRYABLE_STATUSES and model_admin.has_retry_permission(request),
        "can_edit_retry": job.status in RETRYABLE_STATUSES
        and model_admin.has_change_permission(request, job)
        and model_admin.has_retry_permission(request),
        "data_text": data_text if data_text is not None else json.dumps(job.data, indent=2, ensure_ascii=False),
        "data_error": data_error,
        "live_url": reverse("admin:django_kinetik_job_live", args=[job.pk]),
        # Without a feed (SQLite or MySQL without Redis) the page polls live_url.
        "events_url": reverse("admin:django_kinetik_job_events", args=[job.pk]) if feed.available() else "",
    }
    return TemplateResponse(request, "admin/django_kinetik/job/detail.html", context)


def _back(job: Job) -> HttpResponseRedirect:
    return HttpResponseRedirect(reverse("admin:django_kinetik_job_change", args=[job.pk]))


def _change_view(
    model_admin: Any, request: HttpRequest, object_id: str, allowed: bool, change: Any, done: str
) -> HttpResponse:
    """A POST-only button on the job page: ``change(job)``, then back to the page with a message."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    if not allowed:
        raise PermissionDenied
    job = _job(model_admin, request, object_id)
    try:
        change(job)
        model_admin.message_user(request, f"Job #{job.pk} {done}.", messages.SUCCESS)
    except InvalidTransition as error:
        model_admin.message_user(request, str(error), messages.WARNING)
    return _back(job)


def cancel_view(model_admin: Any, request: HttpRequest, object_id: str) -> HttpResponse:
    allowed = model_admin.has_cancel_permission(request)
    return _change_view(model_admin, request, object_id, allowed, jobs.cancel, "cancelled")


def retry_view(model_admin: Any, request: HttpRequest, object_id: str) -> HttpResponse:
    allowed = model_admin.has_retry_permission(request)
    return _change_view(model_admin, request, object_id, allowed, jobs.retry, "queued again")


def edit_retry_view(model_admin: Any, request: HttpRequest, object_id: str) -> HttpResponse:
    """Correct a finished job's data and run it again; its earlier attempts stay in its history."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    job = _job(model_admin, request, object_id)
    if not (model_admin.has_change_permission(request, job) and model_admin.has_retry_permission(request)):
        raise PermissionDenied
    text = request.POST.get("data", "")
    try:
        data = ensure_json_object(json.loads(text), what="data", max_bytes=get_settings().max_data_bytes)
    except json.JSONDecodeError as error:
        return detail_view(model_admin, request, object_id, data_text=text, data_error=f"Not valid JSON: {error}")
    except RecursionError:
        # Deep enough, json.loads meets Python's recursion limit before ensure_json_object can count the levels.
        message = (
            f"The data is nested far more than {MAX_DEPTH} levels deep, the most every database stores; flatten it."
        )
        return detail_view(model_admin, request, object_id, data_text=text, data_error=message)
    except (TypeError, ValueError) as error:
        return detail_view(model_admin, request, object_id, data_text=text, data_error=str(error))
    # One conditional UPDATE: the new data and the retry land together, or not at all.
    if not lifecycle.retry([job.pk], job._state.db or get_settings().database, data=data):
        model_admin.message_user(request, f"Job #{job.pk} is {job.status} now; it was not changed.", messages.WARNING)
    else:
        model_admin.message_user(request, f"Job #{job.pk} queued again with the corrected data.", messages.SUCCESS)
    return _back(job)


def live_view(model_admin: Any, request: HttpRequest, object_id: str) -> JsonResponse:
    """What changed on a job since the page loaded: status, progress, new log lines."""
    job = _job(model_admin, request, object_id)
    try:
        after = int(request.GET.get("after", 0))
    except ValueError:
        after = 0
    lines = JobLog.objects.using(job._state.db).filter(job=job, id__gt=after).order_by("id")[:200]
    return JsonResponse(
        {
            "id": job.pk,
            "status": job.status,
            "status_display": job.get_status_display(),
            "live": job.status in LIVE_STATUSES,
            "attempts": job.attempts,
            "progress": {
                "current": job.progress_current,
                "total": job.progress_total,
                "percent": job.progress_percent,
            },
            "logs": [
                {
                    "id": line.id,
                    "created_at": line.created_at.isoformat(),
                    "attempt": line.attempt,
                    "message": line.message,
                    "data": line.data,
                }
                for line in lines
            ],
        }
    )


def events_view(model_admin: Any, request: HttpRequest, object_id: str) -> HttpResponseBase:
    """The job's live events as server-sent events; the page renders them instead of polling."""
    job = _job(model_admin, request, object_id)
    return sse.stream_response(request, job=job.pk)
