"""One API view per URL, built from the handlers of its HTTP methods.

:class:`Endpoint` does what every API view needs, in one place: answer 405
(JSON, with ``Allow``) to other methods, check credentials and the method's
permission (:mod:`.auth`), and turn the queue's own errors into JSON answers
(unknown job 404, impossible change 409).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse

from ..exceptions import InvalidTransition, JobNotFound
from .auth import authorize
from .responses import ApiError

Handler = Callable[..., HttpResponse]


class Endpoint:
    """A view answering ``METHOD=(handler, permission codename)``.

    ``Endpoint(GET=(show, "view_job"), DELETE=(delete, "delete_job"))``. The
    view is CSRF-exempt for token callers; :func:`.auth.authorize` runs the
    check itself for session callers.
    """

    #: read by CsrfViewMiddleware, like the attribute ``@csrf_exempt`` sets
    csrf_exempt = True

    def __init__(self, **methods: tuple[Handler, str]) -> None:
        self.methods = methods

    def __call__(self, request: HttpRequest, **kwargs: Any) -> HttpResponse:
        method = request.method or ""
        # HEAD is GET without the body (which the server drops), as in Django's own views.
        operation = self.methods.get("GET" if method == "HEAD" else method)
        try:
            if operation is None:
                allowed = ", ".join(self.methods)
                raise ApiError(405, f"{method} is not allowed here; use {allowed}.", {"Allow": allowed})
            handler, permission = operation
            authorize(request, permission)
            return handler(request, **kwargs)
        except ApiError as error:
            return error.response()
        except JobNotFound as error:
            return ApiError(404, str(error)).response()
        except InvalidTransition as error:
            return ApiError(409, str(error)).response()
