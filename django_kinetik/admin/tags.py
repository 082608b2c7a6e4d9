"""Tags in the admin: every tag the queue knows, each with a Pause or Resume button.

A tag is not a row someone types in: the list is read from the data (the
jobs' tags, by index look-ups), the registry, the live workers and the tags
already paused. A button asks for confirmation on a page of its own, then
calls :func:`django_kinetik.jobs.pause` or ``resume``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme

from .. import jobs
from ..conf import get_settings
from ..models import Job, TagState, Worker
from ..registry import registry
from ..templatetags.kinetik_admin import trail
from .filters import distinct_values
from .guards import NUL, GuardedModelAdmin


@dataclass(frozen=True)
class TagRow:
    tag: str
    paused: bool
    changed_at: datetime | None
    #: live workers serving the tag
    workers: int


def tag_rows() -> list[TagRow]:
    """Every tag there is reason to show, in order, with its state."""
    settings = get_settings()
    states = {state.tag: state for state in TagState.objects.using(settings.database)}
    live_since = timezone.now() - timedelta(seconds=settings.lease)
    live = Worker.objects.using(settings.database).filter(
        state__in=(Worker.State.ONLINE, Worker.State.STOPPING), last_heartbeat__gte=live_since
    )
    served: dict[str, int] = {}
    for worker_tags in live.values_list("tags", flat=True):
        for tag in worker_tags or []:
            served[tag] = served.get(tag, 0) + 1
    known = {*distinct_values(Job, "tag", settings.database), *registry.tags(), *states, *served}
    return [
        TagRow(
            tag,
            bool(states.get(tag) and states[tag].paused),
            states[tag].changed_at if tag in states else None,
            served.get(tag, 0),
        )
        for tag in sorted(known)
    ]


def paused_tags() -> set[str]:
    return set(TagState.objects.using(get_settings().database).filter(paused=True).values_list("tag", flat=True))


@admin.register(TagState)
class TagStateAdmin(GuardedModelAdmin):
    """The tag list (in place of Django's list of rows) and its Pause and Resume pages."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # a tag exists because jobs or tasks have it; pausing is the button

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a row's fields are set by pause and resume only, never typed in

    def can_pause(self, request: HttpRequest) -> bool:
        return request.user.has_perm(f"{self.opts.app_label}.change_tagstate")

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "title": "Tags",
            "opts": self.opts,
            "crumbs": trail(self.opts, ("Tags", "")),
            "rows": tag_rows(),
            "can_pause": self.can_pause(request),
            "here": request.get_full_path(),
        }
        return TemplateResponse(request, "admin/django_kinetik/tags.html", context)

    def get_urls(self) -> list[URLPattern]:
        def view(paused: bool, name: str) -> URLPattern:
            wrapped = self.admin_site.admin_view(lambda request: self.pause_view(request, paused))
            return path(f"{name}/", wrapped, name=f"django_kinetik_tagstate_{name}")

        return [view(True, "pause"), view(False, "resume"), *super().get_urls()]

    def pause_view(self, request: HttpRequest, paused: bool) -> HttpResponse:
        """GET: the confirmation page; POST: pause (or resume) the tag, then back where the button was."""
        if not self.can_pause(request):
            raise PermissionDenied
        data = request.POST if request.method == "POST" else request.GET
        tag = data.get("tag", "")
        back = data.get("next", "")
        if not url_has_allowed_host_and_scheme(back, {request.get_host()}, request.is_secure()):
            back = ""
        back = back or reverse("admin:django_kinetik_tagstate_changelist")
        verb = "pause" if paused else "resume"
        if not tag or NUL in tag:
            self.message_user(request, "Choose a tag from the list to pause or resume.", messages.WARNING)
            return HttpResponseRedirect(back)
        if request.method == "POST":
            try:
                (jobs.pause if paused else jobs.resume)(tag)
            except (TypeError, ValueError) as error:
                self.message_user(request, str(error), messages.WARNING)
            else:
                done = (
                    "workers stop claiming its jobs within one interval; running jobs finish"
                    if paused
                    else "workers claim its jobs again"
                )
                self.message_user(request, f"Tag {tag} {verb}d: {done}.", messages.SUCCESS)
            return HttpResponseRedirect(back)
        context = {
            **self.admin_site.each_context(request),
            "title": f"{verb.capitalize()} tag {tag}?",
            "opts": self.opts,
            "crumbs": trail(
                self.opts,
                ("Tags", reverse("admin:django_kinetik_tagstate_changelist")),
                (f"{verb.capitalize()} {tag}", ""),
            ),
            "tag": tag,
            "paused": paused,
            "verb": verb,
            "back": back,
            "already": (tag in paused_tags()) == paused,
            "workers": next((row.workers for row in tag_rows() if row.tag == tag), 0),
        }
        return TemplateResponse(request, "admin/django_kinetik/confirm_tag.html", context)
