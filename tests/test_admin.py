"""The admin pages the demo points at: they render, filter, and their actions work."""

import pytest
from django.urls import reverse

from django_kinetik.models import Status
from tests.factories import FinishedJobFactory, JobFactory, JobLogFactory, JobRunFactory, WorkerFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(admin_client):
    return admin_client


def test_job_list_shows_jobs_and_filters_by_status(staff):
    worker = WorkerFactory()
    JobFactory(task="mail.send", worker=worker)
    FinishedJobFactory(task="report.build", progress_current=5, progress_total=10)
    page = staff.get(reverse("admin:django_kinetik_job_changelist"))
    assert page.status_code == 200
    assert b"mail.send" in page.content and b"report.build" in page.content
    filtered = staff.get(reverse("admin:django_kinetik_job_changelist"), {"status__exact": "completed"})
    assert [job.task for job in filtered.context["cl"].result_list] == ["report.build"]


def test_job_detail_shows_runs_and_logs(staff):
    job = FinishedJobFactory(task="report.build", status=Status.FAILED, error="<b>boom</b>")
    JobRunFactory(job=job, outcome="failed", error="first try")
    JobLogFactory(job=job, message="halfway there")
    page = staff.get(reverse("admin:django_kinetik_job_change", args=[job.pk]))
    assert page.status_code == 200
    assert b"halfway there" in page.content and b"first try" in page.content
    assert b"<b>boom</b>" not in page.content  # escaped


def test_cancel_and_retry_actions_count_what_they_changed_and_skipped(staff):
    queued = JobFactory()
    done = FinishedJobFactory()
    response = staff.post(
        reverse("admin:django_kinetik_job_changelist"),
        {"action": "cancel_jobs", "_selected_action": [queued.pk, done.pk]},
        follow=True,
    )
    assert b"Cancelled 1 job(s). Skipped 1 job(s)" in response.content
    queued.refresh_from_db()
    assert queued.status == Status.CANCELLED
    response = staff.post(
        reverse("admin:django_kinetik_job_changelist"),
        {"action": "retry_jobs", "_selected_action": [queued.pk]},
        follow=True,
    )
    assert b"Retried 1 job(s)." in response.content
    queued.refresh_from_db()
    assert queued.status == Status.QUEUED


def test_run_now_queues_delayed_jobs(staff):
    delayed = JobFactory(status=Status.DELAYED)
    staff.post(
        reverse("admin:django_kinetik_job_changelist"),
        {"action": "run_jobs_now", "_selected_action": [delayed.pk]},
    )
    delayed.refresh_from_db()
    assert delayed.status == Status.QUEUED


def test_worker_list_renders(staff):
    WorkerFactory(name="web-1:42:abc")
    page = staff.get(reverse("admin:django_kinetik_worker_changelist"))
    assert b"web-1:42:abc" in page.content
