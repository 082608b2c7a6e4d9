"""The live feed as server-sent events, for browsers (``EventSource``) and ``curl -N``.

Each event is one ``data:`` line holding the event as JSON (see
:meth:`.event.Event.as_json`; ``kind`` says what happened). A comment line
goes out every :data:`HEARTBEAT` seconds so proxies and load balancers keep
an idle stream open and a closed one is noticed. A stream ends after
:data:`LIFETIME`: a WSGI server gives each open stream a thread, and
``EventSource`` reconnects by itself (after the ``retry`` we send).

Under ASGI the response body is an async iterator, so an open stream costs
no thread at all.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable, Iterator

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.core.handlers.asgi import ASGIRequest
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connections
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.urls import NoReverseMatch, reverse

from ..api.auth import authorize, bearer_token
from ..api.responses import ApiError
from . import available
from .event import KINDS, Event
from .stream import EventStream, events

#: seconds between keep-alive comments while nothing happens
HEARTBEAT = 15.0
#: seconds a stream stays open before the browser is asked to reconnect
LIFETIME = 300.0
#: milliseconds the browser waits before reconnecting
RETRY_MS = 3000


def events_view(request: HttpRequest) -> HttpResponseBase:
    """``GET events/?job=<id>&tag=<tag>&kind=<kind>``: for whoever may read jobs through the API.

    That is a bearer token from ``KINETIK["API_TOKENS"]``, or a staff session
    with the ``django_kinetik.view_job`` permission: the events carry job data,
    log lines and errors. ``job`` and ``tag`` filter the feed; ``kind``
    (repeatable, or comma-separated) keeps only those kinds of event.
    """
    refused = _refusal(request)
    if refused is not None:
        return refused
    job: int | None = None
    if request.GET.get("job"):
        try:
            job = int(request.GET["job"])
        except ValueError:
            return HttpResponseBadRequest("job must be a job id (a number).", content_type="text/plain")
    kinds = [kind for value in request.GET.getlist("kind") for kind in value.split(",") if kind]
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        return HttpResponseBadRequest(
            f"Unknown event kind(s) {', '.join(unknown)}; the kinds are {', '.join(KINDS)}.",
            content_type="text/plain",
        )
    return stream_response(request, job=job, tag=request.GET.get("tag") or None, kinds=kinds or None)


def _refusal(request: HttpRequest) -> HttpResponseBase | None:
    """None if the API would let the caller read jobs; else the answer to give.

    Scripts get the API's JSON errors. A browser (a page, an ``EventSource``)
    is sent to the admin's login page, where its staff log in, or gets
    Django's 403 page.
    """
    try:
        authorize(request, "view_job")
    except ApiError as error:
        if not _from_a_browser(request):
            return error.response()
        if error.status != 401:
            raise PermissionDenied(error.message) from None
        try:
            login_url = reverse("admin:login")
        except NoReverseMatch:  # no admin in this project: nowhere to send the browser
            return error.response()
        return redirect_to_login(request.get_full_path(), login_url)
    return None


def _from_a_browser(request: HttpRequest) -> bool:
    # A script sends a bearer token or asks for JSON; a browser does neither.
    asks_for_json = request.accepts("application/json") and not request.accepts("text/html")
    return bearer_token(request) is None and not asks_for_json


def stream_response(
    request: HttpRequest, *, job: int | None = None, tag: str | None = None, kinds: list[str] | None = None
) -> HttpResponseBase:
    """An SSE response following the feed with these filters (503 when there is no feed)."""
    if not available():
        return HttpResponse(
            'No live event feed: it needs PostgreSQL or KINETIK["REDIS"].', status=503, content_type="text/plain"
        )

    # Opened by the body when the server starts sending it: a response that is
    # never sent must not leave a stream registered.
    def open_stream() -> EventStream:
        return events(job=job, tag=tag, kinds=kinds)

    body = _async_body(open_stream) if isinstance(request, ASGIRequest) else _body(open_stream)
    response = StreamingHttpResponse(body, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: pass each event on at once
    return response


def _message(event: Event | None) -> str:
    if event is None:
        return ": keep-alive\n\n"
    return f"data: {json.dumps(event.as_json(), cls=DjangoJSONEncoder, separators=(',', ':'))}\n\n"


def _body(open_stream: Callable[[], EventStream]) -> Iterator[str]:
    # The stream may stay open for minutes and needs no database connection:
    # give back the request's, as the end of a request would (if CONN_MAX_AGE
    # says so; never inside a transaction, such as a test's).
    for connection in connections.all(initialized_only=True):
        if not connection.in_atomic_block:
            connection.close_if_unusable_or_obsolete()
    stream = open_stream()
    try:
        # Listening before the first byte: a client that catches up on the job's
        # state once connected cannot miss what happens after.
        stream.wait_ready()
        yield f"retry: {RETRY_MS}\n: listening\n\n"
        ends = time.monotonic() + LIFETIME
        while (left := ends - time.monotonic()) > 0:
            yield _message(stream.get(min(HEARTBEAT, left)))
    finally:
        stream.close()


async def _async_body(open_stream: Callable[[], EventStream]) -> AsyncIterator[str]:
    stream = open_stream()
    try:
        await stream.await_ready()
        yield f"retry: {RETRY_MS}\n: listening\n\n"
        ends = time.monotonic() + LIFETIME
        while (left := ends - time.monotonic()) > 0:
            yield _message(await stream.aget(min(HEARTBEAT, left)))
    finally:
        stream.close()
