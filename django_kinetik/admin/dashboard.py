"""The dashboard: counts by task and tag, live workers, a throughput chart.

The chart is SVG drawn here, on the server: nothing is loaded from a CDN and
the page works offline. Its colours come from CSS, so it follows the admin's
light and dark themes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.db.models.functions import TruncMinute
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from ..conf import get_settings
from ..jobs import stats
from ..models import Job, Schedule, Status, Worker
from ..registry import registry
from ..templatetags.kinetik_admin import trail
from . import tags

MINUTES = 60


@dataclass(frozen=True)
class Minute:
    start: datetime
    completed: int
    failed: int


def throughput(now: datetime | None = None) -> list[Minute]:
    """Jobs that completed and that failed (or timed out) in each of the last 60 minutes."""
    now = (now or timezone.now()).replace(second=0, microsecond=0) + timedelta(minutes=1)
    since = now - timedelta(minutes=MINUTES)
    rows = (
        Job.objects.using(get_settings().database)
        .finished([Status.COMPLETED, Status.FAILED, Status.TIMEOUT])
        .filter(finished_at__gte=since)
        .annotate(minute=TruncMinute("finished_at"))
        .values_list("minute", "status")
        .annotate(n=Count("id"))
        .order_by()
    )
    counts: dict[tuple[datetime, str], int] = {}
    for minute, status, n in rows:
        # Aware datetimes compare and hash by instant, whatever their time zone.
        key = (minute, "completed" if status == Status.COMPLETED else "failed")
        counts[key] = counts.get(key, 0) + n
    return [
        Minute(start, counts.get((start, "completed"), 0), counts.get((start, "failed"), 0))
        for start in (since + timedelta(minutes=index) for index in range(MINUTES))
    ]


def axis_step(peak: int) -> int:
    """A round step (1, 2, 5, 10, 20, 50...) giving at most four gridlines up to ``peak``."""
    step = 1
    while True:
        for factor in (1, 2, 5):
            if peak <= 4 * step * factor:
                return step * factor
        step *= 10


def chart_svg(minutes: list[Minute]) -> SafeString:
    """Bars per minute from one baseline, failed stacked on completed; the last bar is the current minute."""
    width, height, left, bottom, top = 720, 220, 44, 24, 10
    plot_width, plot_height = width - left - 8, height - bottom - top
    baseline = top + plot_height
    peak = max([1] + [m.completed + m.failed for m in minutes])
    step = axis_step(peak)
    ceiling = step * -(-peak // step)  # the peak rounded up to a whole step
    bar = plot_width / len(minutes)
    bars = []
    for index, minute in enumerate(minutes):
        x = left + index * bar + 1
        title = f"{timezone.localtime(minute.start):%H:%M}: {minute.completed} completed, {minute.failed} failed"
        completed_height = plot_height * minute.completed / ceiling
        if minute.completed:
            bars.append(
                ("kinetik-bar-completed", *_numbers(x, baseline - completed_height, bar - 2, completed_height), title)
            )
        if minute.failed:
            h = plot_height * minute.failed / ceiling
            bars.append(("kinetik-bar-failed", *_numbers(x, baseline - completed_height - h, bar - 2, h), title))
    # Gridlines and their numbers, bottom to top: 0, step, 2 step... up to the ceiling.
    ticks = [
        (*_numbers(left, y, width - 8, y, left - 6, y + 4), value)
        for value in range(0, ceiling + 1, step)
        for y in [baseline - plot_height * value / ceiling]
    ]
    # Time labels counted back from the last bar, so the last one reads the current minute.
    last = len(minutes) - 1
    labels = [
        (
            *_numbers(left + (index + 0.5) * bar),
            str(height - 6),
            "end" if index == last else "middle",
            f"{timezone.localtime(minutes[index].start):%H:%M}",
        )
        for index in range(last % 10, len(minutes), 10)
    ]
    return format_html(
        '<svg class="kinetik-chart" viewBox="0 0 {w} {h}" role="img" '
        'aria-label="Jobs completed and failed per minute, last hour, up to now">'
        "{ticks}"
        '<line class="kinetik-axis" x1="{l}" y1="{b}" x2="{r}" y2="{b}"></line>'
        "{bars}{labels}</svg>",
        w=width,
        h=height,
        l=left,
        r=width - 8,
        b=f"{baseline:.1f}",
        ticks=format_html_join(
            "",
            '<line class="kinetik-grid" x1="{}" y1="{}" x2="{}" y2="{}"></line>'
            '<text class="kinetik-label kinetik-y-label" x="{}" y="{}" text-anchor="end">{}</text>',
            ticks,
        ),
        bars=format_html_join(
            "", '<rect class="{}" x="{}" y="{}" width="{}" height="{}"><title>{}</title></rect>', bars
        ),
        labels=format_html_join(
            "", '<text class="kinetik-label kinetik-x-label" x="{}" y="{}" text-anchor="{}">{}</text>', labels
        ),
    )


def _numbers(*values: float) -> tuple[str, ...]:
    return tuple(f"{value:.1f}" for value in values)


def dashboard_view(model_admin: Any, request: HttpRequest) -> TemplateResponse:
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    counts = stats()
    statuses = list(Status.values)
    settings = get_settings()
    # As on the workers page: a worker silent for longer than a lease is lost, not live.
    live_since = timezone.now() - timedelta(seconds=settings.lease)
    workers = (
        Worker.objects.using(settings.database)
        .filter(state__in=(Worker.State.ONLINE, Worker.State.STOPPING), last_heartbeat__gte=live_since)
        .order_by("host", "pid")
    )
    minutes = throughput()
    context = {
        **model_admin.admin_site.each_context(request),
        "title": "Job dashboard",
        "opts": Job._meta,
        "crumbs": trail(Job._meta, ("Dashboard", "")),
        "paused_tags": tags.paused_tags(),
        "can_pause": request.user.has_perm("django_kinetik.change_tagstate"),
        "here": request.get_full_path(),
        "statuses": statuses,
        "totals": [counts["status"].get(status, 0) for status in statuses],
        "total": counts["total"],
        "by_task": _rows(counts["tasks"], statuses),
        "by_tag": _rows(counts["tags"], statuses),
        "workers": workers,
        "chart": chart_svg(minutes),
        "completed_last_hour": sum(m.completed for m in minutes),
        "failed_last_hour": sum(m.failed for m in minutes),
        "schedules": schedules(),
        "holds": counts["holds"],
    }
    return TemplateResponse(request, "admin/django_kinetik/dashboard.html", context)


@dataclass(frozen=True)
class ScheduleRow:
    task: str
    schedule: str
    next_run: datetime
    last_run: datetime | None


def schedules() -> list[ScheduleRow]:
    """Periodic tasks as the workers have them, and those defined here that no worker has run yet."""
    rows = {
        row.task: ScheduleRow(row.task, row.schedule, row.next_slot, row.last_slot)
        for row in Schedule.objects.using(get_settings().database)
    }
    now = timezone.now()
    for name, (_, timing) in registry.periodic().items():
        if name not in rows:
            rows[name] = ScheduleRow(name, timing.describe(), timing.next_after(now), None)
    return sorted(rows.values(), key=lambda row: row.task)


def _rows(groups: dict[str, dict[str, int]], statuses: list[str]) -> list[tuple[str, list[int], int]]:
    return [
        (name, [by_status.get(status, 0) for status in statuses], sum(by_status.values()))
        for name, by_status in sorted(groups.items())
    ]
