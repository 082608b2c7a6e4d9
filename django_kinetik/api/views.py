"""The JSON API's handlers; :mod:`.urls` wraps them in :class:`.endpoint.Endpoint`.

Each handler assumes the caller is allowed (the endpoint checked) and
answers JSON. Reads go to ``KINETIK["DATABASE"]``; changes go through
:mod:`django_kinetik.jobs`, like the admin's and the commands'.
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from typing import Any

from django.db import DatabaseError, transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse

from .. import jobs
from ..conf import get_settings
from ..exceptions import JobNotFound, UnknownTask
from ..models import Job, JobLog, Status, pages
from ..values.text import unstorable
from . import openapi
from .body import read_json
from .enqueue import create_from_json
from .pagination import MAX_ID, next_url, page, parse_after, parse_limit
from .responses import ApiError, json_response
from .serialize import job_json, jobs_json, log_json

#: the query parameters ``GET api/jobs`` understands
LIST_PARAMETERS = ("status", "task", "tag", "order", "after", "limit")
#: and ``GET api/jobs/<id>/log``
LOG_PARAMETERS = ("after", "limit")
ORDERS = ("-id", "id")

logger = logging.getLogger("django_kinetik.api")


def _jobs() -> QuerySet[Job]:
    return Job.objects.using(get_settings().database)


def _job_id(job_id: int) -> int:
    # The URL takes any digits; a number no key can hold would overflow the query.
    if job_id > MAX_ID:
        raise JobNotFound(f"There is no job with id {job_id}.")
    return job_id


def _known_parameters(request: HttpRequest, known: tuple[str, ...]) -> None:
    # A misspelt filter (?state=failed) would otherwise be ignored, and the
    # client would take every job for the ones it asked for.
    unknown = sorted(set(request.GET) - set(known))
    if unknown:
        raise ApiError(400, f"Unknown parameter(s) {', '.join(map(repr, unknown))}; use {', '.join(known)}.")
    for name, values in request.GET.lists():
        problem = next(filter(None, map(unstorable, values)), None)
        if problem is not None:  # PostgreSQL cannot even compare with such text
            raise ApiError(400, f"Parameter {name} {problem}; no job has it.")


def root(request: HttpRequest) -> HttpResponse:
    """``GET api/``: the OpenAPI document describing this API."""
    return json_response(openapi.document(request))


def stats(request: HttpRequest) -> HttpResponse:
    """``GET api/stats``: job counts by status, task and tag."""
    return json_response(jobs.stats())


def list_jobs(request: HttpRequest) -> HttpResponse:
    """``GET api/jobs``: one page of jobs, newest first unless ``order=id``.

    Each filter is an equality an index answers (``tag, -id``, ``task, -id``,
    ``status, -id`` for finished jobs; the partial claim, due and lease indexes
    hold only the few live ones), and on PostgreSQL the page is read through
    that index (``models/pages.py``), so a page of 100 reads about 100 rows
    whether the table holds ten jobs or millions, and whatever else came since.
    """
    _known_parameters(request, LIST_PARAMETERS)
    queryset = _jobs().select_related("worker")
    status = request.GET.get("status")
    if status and status not in Status.values:
        raise ApiError(400, f"status {status!r} is not one of {', '.join(Status.values)}.")
    filters = {field: request.GET[field] for field in ("status", "task", "tag") if request.GET.get(field)}
    order = request.GET.get("order") or "-id"
    if order not in ORDERS:
        raise ApiError(400, f"order must be -id (newest first) or id (oldest first), not {order!r}.")
    descending = order == "-id"
    queryset = pages.filtered(queryset, filters, descending=descending)
    rows, more = page(
        queryset, after=parse_after(request), limit=parse_limit(request), descending=descending, ordered=True
    )
    return json_response({"jobs": jobs_json(rows), "next": next_url(request, rows, more)})


def create_jobs(request: HttpRequest) -> HttpResponse:
    """``POST api/jobs``: one job (an object; 201) or several (a list).

    Each item of a list is created on its own (Kue's semantics): the answer
    holds, in the same order, the job or ``{"error": ...}`` for each; 200 when
    all were created, 207 when some were not. An item is written exactly when
    the answer reports it created: a refused item writes nothing, and one the
    database refuses is rolled back to its own savepoint inside a request's
    transaction (``ATOMIC_REQUESTS``), so the items around it stand.
    """
    body = read_json(request)
    if isinstance(body, dict):
        return json_response(job_json(_create(body)), status=201)
    if not isinstance(body, list):
        raise ApiError(400, "Send a JSON object (one job) or a list of job objects.")
    results: list[dict[str, Any]] = []
    failed = False
    for index, item in enumerate(body):
        try:
            results.append(job_json(_create(item)))
        except ApiError as error:
            results.append({"error": f"item {index}: {error.message}"})
            failed = True
    return json_response(results, status=207 if failed else 200)


def _create(item: Any) -> Job:
    using = get_settings().database
    # A savepoint only where a failed statement would break an enclosing transaction.
    isolated = transaction.atomic(using=using) if transaction.get_connection(using).in_atomic_block else nullcontext()
    try:
        with isolated:
            return create_from_json(item)
    except (UnknownTask, TypeError, ValueError) as error:
        message = str(error)
        raise ApiError(400, message if message.endswith(".") else f"{message}.") from None
    except DatabaseError as error:
        # Input create() let through but the database refused: nothing was written.
        logger.warning("The database refused a job the API was asked to create: %r", error)
        raise ApiError(
            400, f"The database refused this job ({type(error).__name__}); nothing was written for it."
        ) from None


def show_job(request: HttpRequest, job_id: int) -> HttpResponse:
    """``GET api/jobs/<id>``: the job."""
    job = _jobs().select_related("worker").filter(pk=_job_id(job_id)).first()
    if job is None:
        raise JobNotFound(f"There is no job with id {job_id}.")
    return json_response(job_json(job))


def delete_job(request: HttpRequest, job_id: int) -> HttpResponse:
    """``DELETE api/jobs/<id>``: the job, its log and its runs; never a running job.

    The row is locked while its status is checked, so a worker cannot claim
    it between the check and the delete (PostgreSQL, MySQL: claims skip
    locked rows).
    """
    using = get_settings().database
    with transaction.atomic(using=using):
        status = _jobs().select_for_update().filter(pk=_job_id(job_id)).values_list("status", flat=True).first()
        if status is None:
            raise JobNotFound(f"There is no job with id {job_id}.")
        if status == Status.ACTIVE:
            raise ApiError(409, f"Job {job_id} is running; cancel it first (POST its cancel URL), then delete it.")
        jobs.delete_jobs([job_id])
    return HttpResponse(status=204)


def job_log(request: HttpRequest, job_id: int) -> HttpResponse:
    """``GET api/jobs/<id>/log``: the job's log lines, oldest first, a page at a time."""
    _known_parameters(request, LOG_PARAMETERS)
    if not _jobs().filter(pk=_job_id(job_id)).exists():
        raise JobNotFound(f"There is no job with id {job_id}.")
    lines = JobLog.objects.using(get_settings().database).filter(job_id=job_id)
    rows, more = page(lines, after=parse_after(request), limit=parse_limit(request), descending=False)
    return json_response({"logs": [log_json(line) for line in rows], "next": next_url(request, rows, more)})


def cancel_job(request: HttpRequest, job_id: int) -> HttpResponse:
    """``POST api/jobs/<id>/cancel``: the cancelled job; 409 if it had finished."""
    return json_response(job_json(jobs.cancel(_job_id(job_id))))


def retry_job(request: HttpRequest, job_id: int) -> HttpResponse:
    """``POST api/jobs/<id>/retry``: the job, queued again; 409 unless it failed, timed out or was cancelled."""
    return json_response(job_json(jobs.retry(_job_id(job_id))))


def not_found(request: HttpRequest, rest: str) -> HttpResponse:
    """Any other URL under ``api/``: a JSON 404 rather than Django's HTML page (no credentials needed)."""
    return ApiError(404, f"There is no API endpoint at {request.path}; GET the API root for the list.").response()
