"""What the admin refuses before it reaches the database.

Anyone with a staff login can edit the admin's URLs and forms. Django checks
most of what it is given, but some values pass its checks and fail in the
database or in its own arithmetic: a NUL (PostgreSQL text cannot hold one), a
year the calendar does not have in the date drill-down, an id that is not an
id, a lookup the database lacks (``data__contains`` on SQLite, a broken
``__regex``). Each is answered here as Django answers other bad input: a 404
for an id, the "invalid lookup" redirect (``?e=1``) for a filter, no results
for a search.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.db.backends.base.operations import BaseDatabaseOperations
from django.db.models import Field, Model, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest, QueryDict

NUL = "\x00"
#: longer search text is not searched: SQLite refuses LIKE patterns over 50,000 bytes
MAX_SEARCH = 1_000


def integer_id(text: str, field: Field[Any, Any]) -> int | None:
    """``text`` as a value of the integer column ``field``, or None if it cannot be one.

    Only ASCII digits, within the column's range: ``int()`` alone also takes
    " 7", "1_000" and "٣" (an Arabic-Indic three), and a number beyond the
    column fails in the database instead of matching nothing.
    """
    if not (text.isascii() and text.isdigit()):
        return None
    value = int(text)
    _, highest = BaseDatabaseOperations.integer_field_ranges[field.get_internal_type()]
    return value if value <= highest else None


def pk_value(model: type[Model], text: str) -> Any:
    """``text`` as a primary key of ``model``; None if no row can have it."""
    pk = model._meta.pk
    assert pk is not None
    if pk.get_internal_type() in BaseDatabaseOperations.integer_field_ranges:
        return integer_id(text, pk)
    return None if NUL in text else text


def holds_nul(data: QueryDict) -> bool:
    return any(NUL in key or any(NUL in value for value in values) for key, values in data.lists())


class GuardedChangeList(ChangeList):
    """Django's list, refusing filters it would pass on to fail in the database.

    Only the list's own filters (the sidebar and the date drill-down) are
    accepted: Django would also take any lookup on any field from the URL,
    which at a million rows may have no index behind it and may not exist on
    the database at all.
    """

    def get_filters(self, request: HttpRequest) -> Any:
        params = self.get_filters_params()
        for key, values in params.items():
            if NUL in key or any(NUL in value for value in values):
                raise IncorrectLookupParameters(f"{key}: a filter value cannot contain a NUL character")
        try:
            specs, has_filters, remaining, duplicates, active = super().get_filters(request)
        except (OverflowError, ValueError) as error:
            # The drill-down adds a year or a month to the URL's date, and Django
            # catches only the error of building that date: year=9999 or 10**20 escape it.
            raise IncorrectLookupParameters(error) from error
        drill_down = set()
        if self.date_hierarchy and f"{self.date_hierarchy}__year" in params:
            drill_down = {f"{self.date_hierarchy}__gte", f"{self.date_hierarchy}__lt"}
        unknown = sorted(set(remaining) - drill_down)
        if unknown:
            raise IncorrectLookupParameters(f"This list does not filter by {', '.join(unknown)}.")
        return specs, has_filters, remaining, duplicates, active


class GuardedModelAdmin(admin.ModelAdmin):
    """A model admin whose URLs and forms never reach the database with what it cannot take."""

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return GuardedChangeList

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        # A list's forms (actions, editable columns) carry ids in hidden fields;
        # a NUL there could only have been put in by hand.
        if request.method == "POST" and holds_nul(request.POST):
            return HttpResponseBadRequest("A form value cannot contain a NUL character.", content_type="text/plain")
        return super().changelist_view(request, extra_context)

    def searchable(self, request: HttpRequest, term: str) -> bool:
        """Whether ``term`` is short enough to search for; if not, the list shows nothing and says why.

        (Django's search form already refuses a NUL, with a message.)
        """
        if len(term) <= MAX_SEARCH:
            return True
        message = f"Search text is at most {MAX_SEARCH:,} characters; nothing was searched."
        self.message_user(request, message, messages.WARNING)
        return False

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        if not self.searchable(request, search_term):
            return queryset.none(), False
        return super().get_search_results(request, queryset, search_term)

    def get_object(self, request: HttpRequest, object_id: str, from_field: str | None = None) -> Any:
        # Django redirects to the admin's index when there is no such object;
        # a bad or stale id is a 404 here, as on the job's own pages.
        if NUL in object_id or (from_field is None and pk_value(self.model, object_id) is None):
            raise Http404(f"There is no {self.opts.verbose_name} {object_id!r}.")
        found = super().get_object(request, object_id, from_field)
        if found is None:
            raise Http404(f"There is no {self.opts.verbose_name} {object_id!r}.")
        return found

    def response_action(
        self, request: HttpRequest, queryset: QuerySet[Any], *args: Any, **kwargs: Any
    ) -> HttpResponse | None:
        selected = request.POST.getlist(ACTION_CHECKBOX_NAME)
        if any(pk_value(self.model, value) is None for value in selected):
            self.message_user(
                request,
                f"The selection holds something that is not the id of a {self.opts.verbose_name}; nothing was done.",
                messages.WARNING,
            )
            return None
        # Django 6.0 also passes where the action form was (action_location).
        return super().response_action(request, queryset, *args, **kwargs)
