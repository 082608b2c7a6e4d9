"""Reading a request's JSON body, refusing one too large before it is parsed.

The declared ``Content-Length`` is checked first, so an oversized upload is
refused without being read; the body actually read is checked too, for
requests that declare no length (chunked, or a lying client).
"""

from __future__ import annotations

import json
from typing import Any, NoReturn

from django.http import HttpRequest

from .responses import ApiError

#: the largest request body the API reads, in bytes (1 MiB: thousands of jobs)
MAX_BODY_BYTES = 1024 * 1024


def read_json(request: HttpRequest, *, limit: int = MAX_BODY_BYTES) -> Any:
    """The parsed body; ``ApiError(400)`` saying what is wrong with it otherwise."""
    declared = request.META.get("CONTENT_LENGTH") or ""
    if declared.strip():
        try:
            length = int(declared)
        except ValueError:
            raise ApiError(400, f"Content-Length {declared!r} is not a number of bytes.") from None
        if length > limit:
            _too_large(limit)
    raw = request.read(limit + 1)
    if len(raw) > limit:
        _too_large(limit)
    if not raw.strip():
        raise ApiError(400, "The request has no body: send a JSON object (one job) or a list of them.")
    try:
        return json.loads(raw, parse_constant=_no_constants)
    except json.JSONDecodeError as error:
        raise ApiError(
            400, f"The body is not valid JSON: {error.msg} (line {error.lineno}, column {error.colno})."
        ) from None
    except UnicodeDecodeError:
        raise ApiError(400, "The body is not UTF-8 text; send JSON encoded as UTF-8.") from None
    except RecursionError:
        raise ApiError(400, "The body's JSON is nested too deeply.") from None


def _too_large(limit: int) -> NoReturn:
    raise ApiError(413, f"The body is larger than {limit // 1024} KiB; send fewer jobs per request (split the list).")


def _no_constants(name: str) -> NoReturn:
    # Python's json accepts NaN and Infinity, which are not JSON and which no
    # other reader of the job's data would accept.
    raise ApiError(400, f"The body is not valid JSON: {name} is not a JSON value.")
