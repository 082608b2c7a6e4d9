"""Template helpers for the job admin."""

from __future__ import annotations

import calendar
import datetime
import json
from typing import Any

import django
from django import template
from django.contrib.admin.views.main import ChangeList
from django.db.models import Max, Min
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.text import capfirst

register = template.Library()


@register.filter
def pretty_json(value: Any) -> str:
    """JSON, indented for reading (escaped by the template like any string)."""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


@register.filter
def kinetik_time(value: datetime.datetime | None) -> str:
    """A precise, compact local time: ``2026-11-25 13:04:05``."""
    if value is None:
        return "-"
    return f"{timezone.localtime(value):%Y-%m-%d %H:%M:%S}"


@register.filter
def in_set(value: Any, collection: Any) -> bool:
    return value in collection


@register.filter
def kinetik_short_time(value: datetime.datetime | None) -> str:
    """A local time in as few characters as tell it apart, the full time on hover.

    ``13:04:05`` today, ``11-28 13:04`` this year, ``2025-11-28`` before: the job
    list has eleven columns to fit into a 1280 px screen.
    """
    if value is None:
        return "-"
    local, today = timezone.localtime(value), timezone.localdate()
    if local.date() == today:
        text = f"{local:%H:%M:%S}"
    elif local.year == today.year:
        text = f"{local:%m-%d %H:%M}"
    else:
        text = f"{local:%Y-%m-%d}"
    return format_html('<time datetime="{}" title="{}">{}</time>', local.isoformat(), kinetik_time(value), text)


@register.filter
def kinetik_age(value: datetime.datetime | None) -> str:
    """How long ago, in seconds while that is short: ``4 s ago``, ``3 min 20 s ago``."""
    if value is None:
        return "-"
    seconds = max(0, round((timezone.now() - value).total_seconds()))
    if seconds < 120:
        return f"{seconds} s ago"
    return f"{kinetik_duration(datetime.timedelta(seconds=seconds))} ago"


@register.filter
def kinetik_elapsed(value: datetime.datetime | None) -> str:
    """Time since ``value``, as a duration: ``12.5 s``."""
    if value is None:
        return "-"
    return kinetik_duration(max(datetime.timedelta(0), timezone.now() - value))


@register.filter
def kinetik_duration(value: datetime.timedelta | None) -> str:
    """``850 µs``, ``12 ms``, ``1.5 s``, ``3 min 20 s``, ``2 h 5 min``."""
    seconds = None if value is None else value.total_seconds()
    # Below zero only when two hosts' clocks disagree: no duration is better than a wrong one.
    if seconds is None or seconds < 0:
        return "-"
    if seconds < 0.0005:
        return f"{seconds * 1_000_000:.0f} µs"
    if seconds < 0.9995:  # what rounds to "1000 ms" reads as "1.0 s"
        return f"{seconds * 1000:.0f} ms"
    if seconds < 59.95:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


@register.simple_tag
def status_badge(job: Any) -> str:
    return format_html('<span class="kinetik-badge kinetik-{}">{}</span>', job.status, job.get_status_display())


@register.simple_tag
def progress_bar(job: Any, compact: bool = False) -> str:
    """The bar with "3 of 4 (75%)"; ``compact`` (the job list) shows the percentage only."""
    percent = job.progress_percent
    if percent is None:
        return mark_safe('<span class="kinetik-muted">-</span>')
    of = f"{_number(job.progress_current)} of {_number(job.progress_total)}"
    return format_html(
        '<progress class="kinetik-progress" value="{}" max="100" title="{}"></progress> {}',
        f"{percent:.0f}",
        of,
        f"{percent:.0f}%" if compact else f"{of} ({percent:.0f}%)",
    )


#: Django 6.1 made the breadcrumbs a list (``<ol class="breadcrumbs">``) and styles only that
OL_BREADCRUMBS = django.VERSION >= (6, 1)


@register.simple_tag
def kinetik_breadcrumbs(crumbs: list[tuple[str, str]]) -> str:
    """The breadcrumbs in the running Django's own markup: ``crumbs`` are (text, url); the last has no url."""
    *trail, (current, _) = crumbs
    if OL_BREADCRUMBS:
        # A line between items as in Django's templates: the space after each separator is that whitespace.
        items = format_html_join("", '<li><a href="{}">{}</a></li>\n', ((link, text) for text, link in trail))
        return format_html('<ol class="breadcrumbs">\n{}<li aria-current="page">{}</li>\n</ol>', items, current)
    links = format_html_join("", '<a href="{}">{}</a> &rsaquo; ', ((link, text) for text, link in trail))
    return format_html('<div class="breadcrumbs">{}{}</div>', links, current)


def _number(value: float) -> str:
    return f"{value:g}"


@register.inclusion_tag("admin/date_hierarchy.html")
def approximate_date_hierarchy(cl: ChangeList) -> dict[str, Any]:
    """Django's date drill-down, without its ``SELECT DISTINCT`` over every row.

    The choices are the years, months or days between the oldest and newest
    job (two index look-ups on ``created_at``), not only those that have jobs.
    """
    field = cl.date_hierarchy
    year, month, day = (cl.params.get(f"{field}__{part}") for part in ("year", "month", "day"))

    def link(filters: dict[str, Any]) -> str:
        return cl.get_query_string(filters, [f"{field}__"])

    bounds = cl.model._default_manager.using(cl.queryset.db).aggregate(first=Min(field), last=Max(field))
    if not bounds["first"]:
        return {"show": False}
    first, last = (timezone.localtime(bounds[key]).date() for key in ("first", "last"))
    if year and month and day:
        chosen = datetime.date(int(year), int(month), int(day))
        return {
            "show": True,
            "back": {
                "link": link({f"{field}__year": year, f"{field}__month": month}),
                "title": capfirst(formats.date_format(chosen, "YEAR_MONTH_FORMAT")),
            },
            "choices": [{"title": capfirst(formats.date_format(chosen, "MONTH_DAY_FORMAT"))}],
        }
    if year and month:
        days_in_month = calendar.monthrange(int(year), int(month))[1]
        days = [datetime.date(int(year), int(month), d) for d in range(1, days_in_month + 1)]
        return {
            "show": True,
            "back": {"link": link({f"{field}__year": year}), "title": str(year)},
            "choices": [
                {
                    "link": link({f"{field}__year": year, f"{field}__month": month, f"{field}__day": d.day}),
                    "title": capfirst(formats.date_format(d, "MONTH_DAY_FORMAT")),
                }
                for d in days
                if first <= d <= last
            ],
        }
    if year:
        months = [datetime.date(int(year), m, 1) for m in range(1, 13)]
        return {
            "show": True,
            "back": {"link": link({}), "title": "All dates"},
            "choices": [
                {
                    "link": link({f"{field}__year": year, f"{field}__month": m.month}),
                    "title": capfirst(formats.date_format(m, "YEAR_MONTH_FORMAT")),
                }
                for m in months
                if (first.year, first.month) <= (m.year, m.month) <= (last.year, last.month)
            ],
        }
    return {
        "show": True,
        "back": None,
        "choices": [
            {"link": link({f"{field}__year": str(y)}), "title": str(y)} for y in range(first.year, last.year + 1)
        ],
    }


def trail(opts: Any, *tail: tuple[str, str]) -> list[tuple[str, str]]:
    """Breadcrumbs for one of kinetik's pages: Home, the app, then ``tail``."""
    app = (str(opts.app_config.verbose_name), reverse("admin:app_list", kwargs={"app_label": opts.app_label}))
    return [("Home", reverse("admin:index")), app, *tail]
