"""Prometheus metrics: ``GET metrics`` (``pip install "django-kinetik[metrics]"``).

Every scrape reads the database afresh through :class:`QueueCollector`,
registered in a new ``CollectorRegistry`` for that request: nothing lives in
the process's global registry, so any number of server processes (gunicorn
workers, several hosts) answer the same numbers, and none counts only "its"
share of the traffic.

Families (all gauges, read from the database at scrape time):

- ``kinetik_jobs{status,task,tag}``: jobs by status, task and tag;
- ``kinetik_queue_depth{tag}``, ``kinetik_queue_oldest_age_seconds{tag}``:
  jobs waiting to run, and how long the oldest has waited since it was due;
- ``kinetik_job_duration_seconds{task,outcome}``: a gauge histogram of recent
  attempts' durations (see :meth:`QueueCollector.durations`);
- ``kinetik_workers_live``, ``kinetik_worker_slots_live``: workers heart-beating,
  and how many jobs they can run at once;
- ``kinetik_tag_paused{tag}``: 1 for a paused tag.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.db.models import Count, DurationField, ExpressionWrapper, F, Max, Min, Q, Sum
from django.db.models.functions import Greatest
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from ..conf import get_settings
from ..jobs import job_counts
from ..models import Job, JobRun, Status, TagState, Worker
from ..registry import registry
from .responses import ApiError

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

#: the duration histogram looks at no more than this many of the newest attempts...
DURATION_RUNS = 10_000
#: ...and among them only those that ended this recently
DURATION_WINDOW = timedelta(minutes=5)
#: upper bounds of the duration buckets, in seconds (jobs run from milliseconds to hours)
DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)


def metrics(request: HttpRequest) -> HttpResponse:
    """``GET metrics``: the metrics, in the exposition format the scraper asks for."""
    try:
        from prometheus_client import CollectorRegistry
        from prometheus_client.exposition import choose_encoder
    except ImportError:
        raise ApiError(
            501, 'Metrics need the prometheus-client package: pip install "django-kinetik[metrics]"'
        ) from None
    scrape = CollectorRegistry(auto_describe=False)
    scrape.register(QueueCollector())
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    response = HttpResponse(encode(scrape), content_type=content_type)
    response["Cache-Control"] = "no-store"
    return response


class QueueCollector:
    """Reads the queue's numbers from the database when the registry collects."""

    def __init__(self, now: datetime | None = None) -> None:
        self.now = now
        self.using = get_settings().database

    def collect(self) -> Iterator[Metric]:
        now = self.now or timezone.now()
        yield from self.jobs()
        yield from self.queues(now)
        yield self.durations(now)
        yield from self.workers(now)
        yield self.paused()

    def jobs(self) -> Iterator[Metric]:
        """``kinetik_jobs`` and ``kinetik_queue_depth``, from the counts :func:`django_kinetik.stats` uses.

        On PostgreSQL finished jobs are counted as they finish, not per scrape
        (:func:`django_kinetik.jobs.job_counts`); elsewhere this counts the
        rows the purge keeps (``PURGE_AFTER``). Each task and
        tag gets every status, 0 included, so a series drops to 0 instead of
        vanishing (which Prometheus would read as "unknown").
        """
        from prometheus_client.core import GaugeMetricFamily

        by_job = GaugeMetricFamily("kinetik_jobs", "Jobs by status, task and tag.", labels=["status", "task", "tag"])
        depth = GaugeMetricFamily("kinetik_queue_depth", "Jobs queued (due, waiting for a worker).", labels=["tag"])
        counts: dict[tuple[str, str], dict[str, int]] = {}
        for task, tag, status, count in job_counts():
            counts.setdefault((task, tag), {})[status] = count
        queued: dict[str, int] = dict.fromkeys(registry.tags(), 0)
        for (task, tag), statuses in sorted(counts.items()):
            for status in Status.values:
                by_job.add_metric([status, task, tag], statuses.get(status, 0))
            queued[tag] = queued.get(tag, 0) + statuses.get(Status.QUEUED, 0)
        for tag, count in sorted(queued.items()):
            depth.add_metric([tag], count)
        yield by_job
        yield depth

    def queues(self, now: datetime) -> Iterator[Metric]:
        """``kinetik_queue_oldest_age_seconds``: since when the oldest queued job of each tag was due.

        Measured from ``run_at`` (when it became runnable), not ``created_at``:
        a job delayed by a day is not late for that day; but never from before
        its creation (a django.tasks job enqueued with a ``run_after`` long past
        has waited since its enqueue, as ``kinetik_health`` counts it). Reads
        queued rows only, on the partial claim index.
        """
        from prometheus_client.core import GaugeMetricFamily

        oldest = GaugeMetricFamily(
            "kinetik_queue_oldest_age_seconds",
            "Seconds the oldest queued job of each tag has been due (0 when none is queued).",
            labels=["tag"],
        )
        queued = Job.objects.using(self.using).queued().order_by().values_list("tag")
        due = dict(queued.annotate(oldest=Min(Greatest("run_at", "created_at"))))
        for tag in sorted({*registry.tags(), *due}):
            since = due.get(tag)
            oldest.add_metric([tag], max(0.0, (now - since).total_seconds()) if since else 0.0)
        yield oldest

    def durations(self, now: datetime) -> Metric:
        """``kinetik_job_duration_seconds``: how long recent attempts took, by task and outcome.

        From ``JobRun`` rows (one per attempt, written when it ends), so failed
        and timed-out attempts count too and a retried job counts each try.
        Bounded and indexed: the newest :data:`DURATION_RUNS` run ids (a range
        of the primary key, since runs are inserted as attempts end), of which
        those that ended within :data:`DURATION_WINDOW`; the buckets are
        counted by the database. A finished-job scan by ``finished_at`` would
        be indexed too, but grows with throughput, and sees only last attempts.

        A *gauge* histogram: it describes the recent window, not a counter
        since the process started (no process sees every attempt), so query it
        without ``rate()``: ``histogram_quantile(0.95, kinetik_job_duration_seconds_bucket)``.
        """
        from prometheus_client.core import GaugeHistogramMetricFamily
        from prometheus_client.utils import floatToGoString

        family = GaugeHistogramMetricFamily(
            "kinetik_job_duration_seconds",
            f"Durations of attempts that ended in the last {int(DURATION_WINDOW.total_seconds())} seconds.",
            labels=["task", "outcome"],
        )
        runs = JobRun.objects.using(self.using)
        newest = runs.aggregate(newest=Max("id"))["newest"]
        if newest is None:
            return family
        took = ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField())
        buckets: dict[str, Any] = {
            f"le_{index}": Count("id", filter=Q(took__lte=timedelta(seconds=bound)))
            for index, bound in enumerate(DURATION_BUCKETS)
        }
        rows = (
            runs.filter(id__gt=newest - DURATION_RUNS, finished_at__gte=now - DURATION_WINDOW)
            .alias(took=took)
            .order_by()
            .values("job__task", "outcome")
            .annotate(count=Count("id"), total=Sum("took"), **buckets)
            .values_list("job__task", "outcome", "count", "total", *buckets)
        )
        for task, outcome, count, total, *within in sorted(rows):
            cumulative = [(floatToGoString(bound), n) for bound, n in zip(DURATION_BUCKETS, within, strict=True)]
            cumulative.append(("+Inf", count))
            family.add_metric([task, outcome], cumulative, total.total_seconds() if total is not None else 0.0)
        return family

    def workers(self, now: datetime) -> Iterator[Metric]:
        """Workers online whose heartbeat is recent (within two leases, as the admin's dashboard)."""
        from prometheus_client.core import GaugeMetricFamily

        live = (
            Worker.objects.using(self.using)
            .filter(state=Worker.State.ONLINE, last_heartbeat__gte=now - timedelta(seconds=2 * get_settings().lease))
            .aggregate(count=Count("id"), slots=Sum("concurrency"))
        )
        yield GaugeMetricFamily("kinetik_workers_live", "Workers online and heart-beating.", value=live["count"])
        yield GaugeMetricFamily(
            "kinetik_worker_slots_live", "Jobs the live workers can run at once.", value=live["slots"] or 0
        )

    def paused(self) -> Metric:
        from prometheus_client.core import GaugeMetricFamily

        family = GaugeMetricFamily("kinetik_tag_paused", "1 while workers are told to skip the tag.", labels=["tag"])
        for tag, paused in TagState.objects.using(self.using).order_by("tag").values_list("tag", "paused"):
            family.add_metric([tag], 1 if paused else 0)
        return family
