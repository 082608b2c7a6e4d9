"""Keyset pages: ``?after=<last id seen>&limit=N``, and a ``next`` link while there is more.

No ``OFFSET`` (which reads every skipped row) and no ``COUNT(*)`` (which reads
the whole table): a page is ``WHERE id < after ORDER BY id DESC LIMIT N+1``
on an index, as fast at page 10,000 as at page 1, and rows created while a
client pages never shift what it sees. The extra row only says whether a
next page exists.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from django.db.models import Model, QuerySet
from django.http import HttpRequest

from ..models import MAX_JOB_ID
from .responses import ApiError

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
#: the largest id a (signed 64-bit) primary key holds
MAX_ID = MAX_JOB_ID

M = TypeVar("M", bound=Model)


def parse_limit(request: HttpRequest) -> int:
    """``?limit=``: 1 to :data:`MAX_LIMIT`, :data:`DEFAULT_LIMIT` if absent."""
    value = request.GET.get("limit", "")
    if not value:
        return DEFAULT_LIMIT
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= MAX_LIMIT:
        raise ApiError(400, f"limit must be a whole number from 1 to {MAX_LIMIT}, not {value!r}.")
    return int(value)


def parse_after(request: HttpRequest) -> int | None:
    """``?after=``: the last id the client has seen (from the previous page), or None."""
    value = request.GET.get("after", "")
    if not value:
        return None
    if not (value.isascii() and value.isdigit()) or int(value) > MAX_ID:
        raise ApiError(400, f"after must be an id (a whole number) from the previous page, not {value!r}.")
    return int(value)


def page(
    queryset: QuerySet[M], *, after: int | None, limit: int, descending: bool, ordered: bool = False
) -> tuple[list[M], bool]:
    """Up to ``limit`` rows past ``after`` in id order, and whether more follow.

    ``ordered``: the queryset is already in that id order (through an index, ``models/pages.py``).
    """
    if after is not None:
        queryset = queryset.filter(pk__lt=after) if descending else queryset.filter(pk__gt=after)
    if not ordered:
        queryset = queryset.order_by("-pk" if descending else "pk")
    rows = list(queryset[: limit + 1])
    return rows[:limit], len(rows) > limit


def next_url(request: HttpRequest, rows: Sequence[Model], more: bool) -> str | None:
    """The URL of the page after ``rows`` (same filters), or None at the end."""
    if not more or not rows:
        return None
    query = request.GET.copy()
    query["after"] = str(rows[-1].pk)
    return request.build_absolute_uri(f"{request.path}?{query.urlencode()}")
