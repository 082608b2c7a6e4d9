"""Prometheus metrics at ``kinetik/metrics``: what a scrape shows, and who may scrape."""

import sys
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.utils import timezone

from django_kinetik.models import Outcome, TagState, Worker
from tests.factories import FinishedJobFactory, JobFactory, JobRunFactory, WorkerFactory

prometheus_client = pytest.importorskip("prometheus_client")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("api_tokens")]

URL = "/kinetik/metrics"


def scrape(client):
    """The scrape as {(sample name, labels as a sorted tuple): value}, and the raw text."""
    response = client.get(URL)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    text = response.content.decode()
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    return samples, text


def value(samples, name, **labels):
    return samples[(name, tuple(sorted(labels.items())))]


def test_jobs_are_counted_by_status_task_and_tag_with_zeros_for_the_other_statuses(api):
    JobFactory.create_batch(2)
    FinishedJobFactory(failed=True)
    FinishedJobFactory(task="test.beta", tag="beta")
    samples, text = scrape(api)
    assert "# TYPE kinetik_jobs gauge" in text
    assert value(samples, "kinetik_jobs", status="queued", task="test.echo", tag="alpha") == 2
    assert value(samples, "kinetik_jobs", status="failed", task="test.echo", tag="alpha") == 1
    assert value(samples, "kinetik_jobs", status="completed", task="test.beta", tag="beta") == 1
    assert value(samples, "kinetik_jobs", status="active", task="test.beta", tag="beta") == 0


def test_queue_depth_and_the_oldest_queued_jobs_age_per_tag(api):
    now = timezone.now()
    JobFactory(run_at=now - timedelta(seconds=90), created_at=now - timedelta(days=2))
    JobFactory(run_at=now - timedelta(seconds=5))
    JobFactory(delayed=True)  # not due: not waiting
    # Enqueued just now through django.tasks with a run_after of last year: it has waited since its enqueue.
    JobFactory(tag="imported", run_at=now - timedelta(days=365), created_at=now - timedelta(seconds=3))
    JobFactory(task="test.beta", tag="beta", active=True)
    samples, text = scrape(api)
    assert "# TYPE kinetik_queue_depth gauge" in text
    assert value(samples, "kinetik_queue_depth", tag="alpha") == 2
    assert value(samples, "kinetik_queue_depth", tag="beta") == 0
    # Every registered tag is there, empty or not: an alert can rely on the series.
    assert value(samples, "kinetik_queue_depth", tag="gamma") == 0
    assert 90 <= value(samples, "kinetik_queue_oldest_age_seconds", tag="alpha") < 120
    assert 3 <= value(samples, "kinetik_queue_oldest_age_seconds", tag="imported") < 30
    assert value(samples, "kinetik_queue_oldest_age_seconds", tag="beta") == 0


def test_recent_attempt_durations_form_a_histogram_by_task_and_outcome(api):
    now = timezone.now()

    def run(seconds, outcome=Outcome.COMPLETED, task="test.echo", ended=now):
        JobRunFactory(
            job=FinishedJobFactory(task=task),
            outcome=outcome,
            started_at=ended - timedelta(seconds=seconds),
            finished_at=ended,
        )

    run(0.2)
    run(3)
    run(20)
    run(40, outcome=Outcome.FAILED)
    run(7, task="test.beta")
    run(1, ended=now - timedelta(hours=1))  # too long ago to count
    samples, text = scrape(api)
    assert "# TYPE kinetik_job_duration_seconds histogram" in text
    echo = {"task": "test.echo", "outcome": "completed"}

    def bucket(le, **labels):
        return value(samples, "kinetik_job_duration_seconds_bucket", le=le, **(labels or echo))

    assert [bucket(le) for le in ("0.1", "0.25", "2.5", "5.0", "10.0", "30.0", "+Inf")] == [0, 1, 1, 2, 2, 3, 3]
    assert value(samples, "kinetik_job_duration_seconds_gcount", **echo) == 3
    assert value(samples, "kinetik_job_duration_seconds_gsum", **echo) == pytest.approx(23.2)
    assert bucket("+Inf", task="test.echo", outcome="failed") == 1
    assert bucket("5.0", task="test.beta", outcome="completed") == 0
    assert bucket("10.0", task="test.beta", outcome="completed") == 1


def test_no_runs_yet_means_an_empty_histogram(api):
    samples, text = scrape(api)
    assert "# TYPE kinetik_job_duration_seconds histogram" in text
    assert not [key for key in samples if key[0].startswith("kinetik_job_duration_seconds")]


def test_live_workers_are_online_and_heart_beating(api):
    now = timezone.now()
    WorkerFactory(concurrency=4)
    WorkerFactory(concurrency=2)
    WorkerFactory(last_heartbeat=now - timedelta(hours=1))  # gone without a word
    WorkerFactory(state=Worker.State.OFFLINE)
    WorkerFactory(state=Worker.State.STOPPING)
    samples, _ = scrape(api)
    assert value(samples, "kinetik_workers_live") == 2
    assert value(samples, "kinetik_worker_slots_live") == 6


def test_paused_tags_are_flagged(api):
    TagState.objects.create(tag="alpha", paused=True)
    TagState.objects.create(tag="beta", paused=False)
    samples, _ = scrape(api)
    assert value(samples, "kinetik_tag_paused", tag="alpha") == 1
    assert value(samples, "kinetik_tag_paused", tag="beta") == 0


def test_each_scrape_reads_the_database_afresh_and_leaves_the_global_registry_alone(api):
    first, _ = scrape(api)
    assert value(first, "kinetik_queue_depth", tag="alpha") == 0
    JobFactory()
    second, _ = scrape(api)
    assert value(second, "kinetik_queue_depth", tag="alpha") == 1
    global_names = {metric.name for metric in prometheus_client.REGISTRY.collect()}
    assert not {name for name in global_names if name.startswith("kinetik")}


def test_openmetrics_is_served_when_the_scraper_asks_for_it(api):
    FinishedJobFactory()
    response = api.get(URL, headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/openmetrics-text")
    text = response.content.decode()
    assert "# TYPE kinetik_jobs gauge" in text
    assert text.endswith("# EOF\n")


def test_metrics_need_credentials(client):
    response = client.get(URL)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="kinetik"'
    assert "error" in response.json()
    wrong = Client(headers={"Authorization": "Bearer " + "x" * 40}).get(URL)
    assert wrong.status_code == 401


def test_staff_need_view_job_to_scrape():
    user = User.objects.create_user("ops", password="pw", is_staff=True)
    client = Client()
    client.force_login(user)
    assert client.get(URL).status_code == 403
    user.user_permissions.add(Permission.objects.get(codename="view_job"))
    assert client.get(URL).status_code == 200


def test_without_prometheus_client_metrics_say_how_to_install_it(api, monkeypatch):
    # A None entry makes "import prometheus_client" fail, as if it were not installed.
    for name in [name for name in sys.modules if name.split(".")[0] == "prometheus_client"]:
        monkeypatch.setitem(sys.modules, name, None)
    response = api.get(URL)
    assert response.status_code == 501
    assert response.json() == {
        "error": 'Metrics need the prometheus-client package: pip install "django-kinetik[metrics]"'
    }
