"""What the API answers: JSON bodies, and errors as ``{"error": "..."}``.

Every answer, success or failure, is JSON (the metrics text aside), so a
client never has to parse an HTML error page. Answers are never cached: they
describe jobs that change by the second, and may hold private data.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.http import JsonResponse
from django.utils.cache import add_never_cache_headers


def json_response(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> JsonResponse:
    """``data`` (JSON types only) as a response that no cache keeps."""
    response = JsonResponse(data, status=status, safe=False, json_dumps_params={"ensure_ascii": False})
    for name, value in (headers or {}).items():
        response[name] = value
    add_never_cache_headers(response)
    return response


class ApiError(Exception):
    """Stops a request with ``status`` and ``{"error": message}``; the message says what to fix."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})

    def response(self) -> JsonResponse:
        return json_response({"error": self.message}, self.status, self.headers)
