"""Who may call the API: a bearer token, or a staff session with the model permission.

A token from ``KINETIK["API_TOKENS"]`` is for machines (scripts, Prometheus)
and grants everything. It is compared with every configured token in constant
time, so neither the answer's timing nor its position in the list leaks.

A logged-in staff user needs the permission of what they ask for
(``view_job``, ``add_job``, ``delete_job``, or the custom ``cancel_job`` /
``retry_job``), exactly as in the admin. Browsers send session cookies by
themselves, so a session's changes must pass Django's CSRF check; a bearer
token is never sent by a browser on its own, so token requests skip it.
"""

from __future__ import annotations

import hmac
import logging

from django.http import HttpRequest, HttpResponseForbidden
from django.middleware.csrf import CsrfViewMiddleware

from ..conf import get_settings
from ..models import Job
from .responses import ApiError

#: methods that change nothing, so need no CSRF check
SAFE_METHODS = ("GET", "HEAD", "OPTIONS", "TRACE")
REALM = 'Bearer realm="kinetik"'

security_log = logging.getLogger("django.security.csrf")


def authorize(request: HttpRequest, permission: str) -> None:
    """Return if the caller may do what needs ``permission`` (a codename); raise ``ApiError`` if not.

    401 when there are no (valid) credentials, 403 when the caller is known but
    not allowed; neither answer says anything about jobs.
    """
    token = bearer_token(request)
    if token is not None:
        if not token_matches(token):
            raise ApiError(
                401,
                "The bearer token is not one of KINETIK['API_TOKENS'].",
                {"WWW-Authenticate": f'{REALM}, error="invalid_token"'},
            )
        return
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        raise ApiError(
            401,
            "Authentication required: log in as a staff user, or send 'Authorization: Bearer <token>' "
            "with a token from KINETIK['API_TOKENS'].",
            {"WWW-Authenticate": REALM},
        )
    perm = f"{Job._meta.app_label}.{permission}"
    if not user.is_staff or not user.has_perm(perm):
        raise ApiError(403, f"This needs a staff account with the {perm} permission.")
    if request.method not in SAFE_METHODS:
        enforce_csrf(request)


def bearer_token(request: HttpRequest) -> str | None:
    """The token of an ``Authorization: Bearer`` header; None without one.

    Another scheme (``Basic`` from a proxy, say) is not ours: the session decides.
    """
    scheme, _, token = request.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip()


def token_matches(given: str) -> bool:
    """Whether ``given`` is a configured token, comparing with all of them in constant time."""
    given_bytes = given.encode()
    matched = False
    for token in get_settings().api_tokens:
        matched |= hmac.compare_digest(given_bytes, token.encode())
    return matched


class _CsrfCheck(CsrfViewMiddleware):
    """Django's own CSRF check, reporting its reason as an API error instead of a page."""

    def _reject(self, request: HttpRequest, reason: str) -> HttpResponseForbidden:
        security_log.warning("Forbidden (%s): %s", reason, request.path, extra={"status_code": 403})
        raise ApiError(
            403,
            f"CSRF check failed: {reason} Send the csrftoken cookie's value in an X-CSRFToken header, "
            "or authenticate with a bearer token instead of the session.",
        )


def enforce_csrf(request: HttpRequest) -> None:
    """Run the CSRF check the API views are exempt from (for their token callers)."""
    check = _CsrfCheck(_not_called)
    # Reads the CSRF cookie even where CsrfViewMiddleware is not installed.
    check.process_request(request)
    check.process_view(request, _not_called, (), {})


def _not_called(request: HttpRequest) -> HttpResponseForbidden:
    # The middleware's get_response and the view it guards: the check needs
    # both, calls neither.
    raise AssertionError("not called")
