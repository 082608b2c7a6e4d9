"""The API described in OpenAPI 3.1: ``GET api/`` returns it as JSON.

Paths are relative to the server URL, which is where the app is mounted
(``/kinetik`` for ``path("kinetik/", include("django_kinetik.urls"))``), so
the document is right wherever a project includes it. The test suite checks
that every route of :mod:`.urls` has its entry here, with the same methods.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest

from ..models import Status
from ..values.options import RUN_OPTION_NAMES
from ..values.priorities import LEVELS, MAX_PRIORITY, MIN_PRIORITY
from .body import MAX_BODY_BYTES
from .pagination import DEFAULT_LIMIT, MAX_LIMIT

VERSION = "1"


def _ref(name: str, kind: str = "schemas") -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _nullable(kind: str, **more: Any) -> dict[str, Any]:
    return {"type": [kind, "null"], **more}


_DURATION = {
    "oneOf": [{"type": "integer", "minimum": 0, "description": "milliseconds"}, {"type": "string"}],
    "description": 'A duration: "10ms", "30s", "45m", "2h", "6d" (or "1h30m"), or integer milliseconds.',
}
_OPTION_SCHEMAS: dict[str, dict[str, Any]] = {
    "timeout": {**_DURATION, "description": "How long one attempt may run."},
    "retries": {"type": "integer", "minimum": 0, "description": "Attempts after the first."},
    "retry_delay": {**_DURATION, "description": "Wait before the first retry."},
    "backoff": {"enum": ["fixed", "linear", "exponential"]},
    "retry_max_delay": {**_DURATION, "description": "No retry waits longer than this."},
    "retry_jitter": {"type": "number", "minimum": 0, "maximum": 1},
    "ghost_retries": {"type": "integer", "minimum": 0, "description": "Runs lost with their worker to requeue."},
    "remove_on_complete": {"type": "boolean", "description": "Delete the job once it completes."},
    "on_parent_failure": {
        "enum": ["cancel", "run"],
        "description": "With after: cancel the job (default) or run it anyway when a parent does not complete.",
    },
}


def _schemas() -> dict[str, Any]:
    timestamp = _nullable("string", format="date-time")
    return {
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {"error": {"type": "string", "description": "What went wrong, and what to do."}},
        },
        "Job": {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "task": {"type": "string"},
                "tag": {"type": "string"},
                "priority": {"type": "integer", "description": "Larger runs first."},
                "status": {"enum": list(Status.values)},
                "data": {"type": "object"},
                "result": {"description": "What the task returned (any JSON), or null."},
                "error": {"type": "string"},
                "error_code": {"type": "string"},
                "waiting": _nullable("string", description="Why a queued job waits for a worker with its code."),
                "attempts": {"type": "integer"},
                "ghosts": {"type": "integer", "description": "Runs lost with their worker and queued again."},
                "snoozes": {"type": "integer", "description": "Times its code asked to run later (Snooze)."},
                "unique_key": _nullable("string"),
                "limit_key": _nullable("string", description='Its key for its task\'s limits ("": the task).'),
                "after": {
                    "type": "array",
                    "items": {"type": "integer"},
                    "description": "Ids of the jobs it runs after.",
                },
                "options": {"type": "object", "description": "Run options given when it was created."},
                "run_at": {"type": "string", "format": "date-time"},
                "created_at": {"type": "string", "format": "date-time"},
                "started_at": timestamp,
                "finished_at": timestamp,
                "progress": {
                    "type": "object",
                    "properties": {
                        "current": _nullable("number"),
                        "total": _nullable("number"),
                        "data": {"description": "Any JSON the task attached, or null."},
                    },
                },
                "worker": _nullable("string", description="Name of the worker that ran it last."),
                "task_backend": {"type": "string", "description": 'The django.tasks backend alias, or "".'},
            },
        },
        "NewJob": {
            "type": "object",
            "required": ["task"],
            "additionalProperties": False,
            "properties": {
                "task": {"type": "string", "description": "A registered task; any name with tag."},
                "data": {"type": "object"},
                "delay": {**_DURATION, "description": "Run this much later."},
                "run_at": {
                    "type": "string",
                    "format": "date-time",
                    "description": "Run at this time (not with delay).",
                },
                "priority": {
                    "oneOf": [
                        {"type": "integer", "minimum": MIN_PRIORITY, "maximum": MAX_PRIORITY},
                        {"enum": list(LEVELS)},
                    ]
                },
                "tag": {"type": "string", "maxLength": 100},
                "unique_key": {"type": "string", "description": "Return the live job with this key instead."},
                "limit_key": {"type": "string", "description": "Count it under this key for the task's limits."},
                "after": {
                    "type": "array",
                    "items": {"type": "integer"},
                    "description": "Run once these jobs (ids) have completed.",
                },
                **{name: _OPTION_SCHEMAS.get(name, {}) for name in RUN_OPTION_NAMES},
            },
        },
        "JobOrError": {"oneOf": [_ref("Job"), _ref("Error")]},
        "JobPage": {
            "type": "object",
            "properties": {
                "jobs": {"type": "array", "items": _ref("Job")},
                "next": _nullable("string", format="uri", description="The next page, or null at the end."),
            },
        },
        "LogLine": {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "attempt": {"type": "integer"},
                "created_at": {"type": "string", "format": "date-time"},
                "message": {"type": "string"},
                "data": {"description": "Any JSON logged with the line, or null."},
            },
        },
        "LogPage": {
            "type": "object",
            "properties": {
                "logs": {"type": "array", "items": _ref("LogLine")},
                "next": _nullable("string", format="uri"),
            },
        },
        "Counts": {"type": "object", "additionalProperties": {"type": "integer"}},
        "Stats": {
            "type": "object",
            "properties": {
                "status": _ref("Counts"),
                "tasks": {"type": "object", "additionalProperties": _ref("Counts")},
                "tags": {"type": "object", "additionalProperties": _ref("Counts")},
                "total": {"type": "integer"},
                "holds": {
                    "type": "array",
                    "description": "Tasks and limit keys held by RateLimited now: no job of them starts before until.",
                    "items": {
                        "type": "object",
                        "properties": {
                            "task": {"type": "string"},
                            "key": {"type": "string", "description": '"" for the whole task.'},
                            "until": {"type": "string", "format": "date-time"},
                            "reason": {"type": "string"},
                        },
                    },
                },
            },
        },
    }


def _responses() -> dict[str, Any]:
    error = _ref("Error")
    return {
        "BadRequest": _json(error, "The request is not valid; the error says what to fix."),
        "Unauthorized": {
            **_json(error, "No credentials, or a token that is not configured."),
            "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
        },
        "Forbidden": _json(error, "Not allowed: the session lacks the permission, or failed the CSRF check."),
        "NotFound": _json(error, "There is no such job."),
        "MethodNotAllowed": {
            **_json(error, "The URL does not answer this method."),
            "headers": {"Allow": {"schema": {"type": "string"}}},
        },
        "Conflict": _json(error, "The job's status does not allow this."),
        "TooLarge": _json(error, "The body is larger than 1 MiB: send fewer jobs per request."),
    }


def _parameters() -> dict[str, Any]:
    def query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
        return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}

    return {
        "JobId": {"name": "job_id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}},
        "Status": query("status", {"enum": list(Status.values)}, "Only jobs in this status."),
        "Task": query("task", {"type": "string"}, "Only jobs of this task."),
        "Tag": query("tag", {"type": "string"}, "Only jobs of this tag."),
        "Order": query("order", {"enum": ["-id", "id"], "default": "-id"}, "Newest first (-id) or oldest first."),
        "After": query("after", {"type": "integer", "minimum": 0}, "The last id of the previous page."),
        "Limit": query(
            "limit",
            {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
            "Items per page.",
        ),
    }


def _operation(summary: str, operation_id: str, responses: dict[str, Any], **more: Any) -> dict[str, Any]:
    common = {"401": _ref("Unauthorized", "responses"), "403": _ref("Forbidden", "responses")}
    return {"summary": summary, "operationId": operation_id, **more, "responses": {**responses, **common}}


def _paths() -> dict[str, Any]:
    job_id = [_ref("JobId", "parameters")]
    not_found = {"404": _ref("NotFound", "responses")}
    conflict = {"409": _ref("Conflict", "responses")}
    job = _json(_ref("Job"), "The job.")
    new_jobs = {
        "required": True,
        "description": f"One job, or a list of them; at most {MAX_BODY_BYTES // 1024} KiB.",
        "content": {
            "application/json": {"schema": {"oneOf": [_ref("NewJob"), {"type": "array", "items": _ref("NewJob")}]}}
        },
    }
    list_results = {"type": "array", "items": _ref("JobOrError")}
    return {
        "/api/": {
            "get": _operation(
                "This document", "getOpenAPI", {"200": _json({"type": "object"}, "The OpenAPI document.")}
            )
        },
        "/api/stats": {
            "get": _operation("Job counts by status, task and tag", "getStats", {"200": _json(_ref("Stats"), "")})
        },
        "/api/jobs": {
            "get": _operation(
                "Jobs, a page at a time (keyset pagination)",
                "listJobs",
                {"200": _json(_ref("JobPage"), "A page of jobs."), "400": _ref("BadRequest", "responses")},
                parameters=[_ref(name, "parameters") for name in ("Status", "Task", "Tag", "Order", "After", "Limit")],
            ),
            "post": _operation(
                "Create one job, or several",
                "createJobs",
                {
                    "201": job,
                    "200": _json(list_results, "A list was sent and every job was created."),
                    "207": _json(list_results, "A list was sent; some items are errors (in the same order)."),
                    "400": _ref("BadRequest", "responses"),
                    "413": _ref("TooLarge", "responses"),
                },
                requestBody=new_jobs,
            ),
        },
        "/api/jobs/{job_id}": {
            "parameters": job_id,
            "get": _operation("One job", "getJob", {"200": job, **not_found}),
            "delete": _operation(
                "Delete a job with its log and runs (not while it runs)",
                "deleteJob",
                {"204": {"description": "Deleted."}, **not_found, **conflict},
            ),
        },
        "/api/jobs/{job_id}/log": {
            "parameters": job_id,
            "get": _operation(
                "The job's log lines, oldest first",
                "getJobLog",
                {"200": _json(_ref("LogPage"), "A page of log lines."), "400": _ref("BadRequest", "responses")}
                | not_found,
                parameters=[_ref("After", "parameters"), _ref("Limit", "parameters")],
            ),
        },
        "/api/jobs/{job_id}/cancel": {
            "parameters": job_id,
            "post": _operation(
                "Cancel a queued, delayed or running job", "cancelJob", {"200": job} | not_found | conflict
            ),
        },
        "/api/jobs/{job_id}/retry": {
            "parameters": job_id,
            "post": _operation(
                "Queue a failed, timed-out or cancelled job again", "retryJob", {"200": job} | not_found | conflict
            ),
        },
        "/metrics": {
            "get": _operation(
                "Prometheus metrics",
                "getMetrics",
                {
                    "200": {
                        "description": "The Prometheus text exposition format (OpenMetrics if asked for).",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    "501": _json(
                        _ref("Error"), 'prometheus-client is not installed: pip install "django-kinetik[metrics]".'
                    ),
                },
            )
        },
    }


def document(request: HttpRequest) -> dict[str, Any]:
    """The OpenAPI document, with the server URL of the mount point ``request`` came through."""
    mount = request.path.removesuffix("api/")
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "django_kinetik",
            "version": VERSION,
            "description": (
                'The job queue\'s JSON API. Every error is {"error": "..."} saying what to fix. '
                "Authenticate with a bearer token from KINETIK['API_TOKENS'] (allowed everything), or a "
                "staff session with the model permission (view_job, add_job, delete_job, cancel_job, "
                "retry_job); a session's POST and DELETE need Django's CSRF token in X-CSRFToken."
            ),
        },
        "servers": [{"url": request.build_absolute_uri(mount).rstrip("/")}],
        "security": [{"bearerAuth": []}, {"sessionAuth": []}],
        "paths": _paths(),
        "components": {
            "schemas": _schemas(),
            "responses": _responses(),
            "parameters": _parameters(),
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A token from KINETIK['API_TOKENS'].",
                },
                "sessionAuth": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": settings.SESSION_COOKIE_NAME,
                    "description": "A logged-in staff user's session (the admin's login).",
                },
            },
        },
    }
