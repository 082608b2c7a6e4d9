"""Jobs on a database of their own: ``KINETIK["DATABASE"] = "jobs"``, the project's data on ``default``.

Collected only in a run with ``KINETIK_TEST_JOBS_DB=separate`` (tests/settings.py
adds the "jobs" alias and ``KinetikRouter``); every run starts one such run
of this file (``test_the_suite_of_jobs_on_their_own_database``, at the end).
What a user would notice: a view's transaction on default and its job, the
admin, the API, a worker in-process and as a process, django.tasks and
``job.wait()`` all find the jobs on "jobs", and nothing of kinetik's is on
default.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest
from django.core import checks
from django.db import connections, transaction
from django.test import Client
from django.urls import reverse

import django_kinetik as kinetik
from django_kinetik.models import Job, Status
from tests.conftest import API_TOKEN, ROOT, worker_env
from tests.testapp import django_tasks as functions
from tests.testapp.models import Effect

BOTH = ["default", "jobs"]
pytestmark = [pytest.mark.jobs_apart, pytest.mark.django_db(databases=BOTH, transaction=True)]


def _jobs():
    return list(Job.objects.using("jobs").order_by("pk").values_list("data", "status"))


def test_kinetik_s_tables_are_only_on_the_jobs_database():
    assert "django_kinetik_job" in connections["jobs"].introspection.table_names()
    assert "django_kinetik_job" not in connections["default"].introspection.table_names()


def test_create_on_commit_follows_the_view_s_transaction_on_default():
    client = Client()
    assert client.get("/orders/", {"number": 1, "rollback": 1}).content == b"rolled back"
    assert _jobs() == [] and not Effect.objects.exists()
    assert client.get("/orders/", {"number": 2}).content == b"saved"
    assert _jobs() == [({"number": 2}, Status.QUEUED)]
    assert list(Effect.objects.values_list("job_id", flat=True)) == [2]


def test_plain_create_in_atomic_on_default_is_not_part_of_that_transaction():
    """What the docs and kinetik.W005 say: the job stays though the view's data is rolled back."""
    assert Client().get("/orders/", {"number": 3, "way": "create", "rollback": 1}).content == b"rolled back"
    assert not Effect.objects.exists()
    assert _jobs() == [({"number": 3}, Status.QUEUED)]


def test_create_on_commit_refuses_bad_input_at_once_and_schedules_nothing():
    with transaction.atomic():
        with pytest.raises(TypeError, match="JSON"):
            kinetik.create_on_commit("test.echo", {"when": object()})
        with pytest.raises(ValueError, match="delay"):
            kinetik.create_on_commit("test.echo", delay="soonish")
        with pytest.raises(kinetik.UnknownTask):
            kinetik.create_on_commit("no such task")
    assert _jobs() == []


def test_create_on_commit_outside_a_transaction_creates_at_once_and_a_task_has_it_too():
    from tests.testapp.tasks import echo

    kinetik.create_on_commit("test.echo", {"n": 1}, priority="high")
    echo.create_on_commit({"n": 2})
    assert [data for data, _ in _jobs()] == [{"n": 1}, {"n": 2}]
    assert Job.objects.using("jobs").get(data={"n": 1}).priority > 0


def _ours():
    """kinetik's check messages, but those the run silences (W004 in a run behind a pooler that polls)."""
    from django.conf import settings

    return {
        m.id: m
        for m in checks.run_checks(tags=["kinetik"])
        if m.id.startswith("kinetik.") and m.id not in settings.SILENCED_SYSTEM_CHECKS
    }


def test_the_checks_say_what_atomic_on_default_means_and_want_the_router(settings):
    ours = _ours()
    assert set(ours) == {"kinetik.W005"}
    assert "create_on_commit" in ours["kinetik.W005"].hint
    settings.DATABASE_ROUTERS = []
    ours = _ours()
    assert set(ours) == {"kinetik.W005", "kinetik.E019"}
    assert "django_kinetik.routers.KinetikRouter" in ours["kinetik.E019"].hint


def test_the_admin_lists_shows_and_cancels_jobs_from_the_jobs_database(admin_client):
    job = kinetik.create("test.echo", {"n": 1})
    listing = admin_client.get(reverse("admin:django_kinetik_job_changelist"))
    assert listing.status_code == 200 and f"/{job.pk}/" in listing.content.decode()
    assert admin_client.get(reverse("admin:django_kinetik_job_change", args=[job.pk])).status_code == 200
    admin_client.post(reverse("admin:django_kinetik_job_cancel", args=[job.pk]))
    assert Job.objects.using("jobs").get(pk=job.pk).status == Status.CANCELLED


def test_the_api_creates_lists_and_counts_on_the_jobs_database(settings):
    settings.KINETIK = {**settings.KINETIK, "API_TOKENS": [API_TOKEN]}
    api = Client(headers={"Authorization": f"Bearer {API_TOKEN}"})
    created = api.post("/kinetik/api/jobs", {"task": "test.echo", "data": {"n": 1}}, content_type="application/json")
    assert created.status_code == 201, created.content
    assert [item["id"] for item in api.get("/kinetik/api/jobs").json()["jobs"]] == [created.json()["id"]]
    assert api.get("/kinetik/api/stats").json()["total"] == 1


def test_a_worker_runs_them_and_a_wait_sees_the_end(run_worker):
    job = kinetik.create("test.echo", {"n": 1})
    waited = []

    def wait():
        try:
            waited.append(job.wait(timeout="20s"))
        finally:
            connections.close_all()  # this thread's, before the test database is dropped

    waiter = threading.Thread(target=wait)
    waiter.start()
    run_worker("alpha")
    waiter.join(30)
    assert Job.objects.using("jobs").get(pk=job.pk).status == Status.COMPLETED
    assert waited == [Job.objects.using("jobs").get(pk=job.pk).result]


def test_django_tasks_enqueue_and_read_back_from_the_jobs_database(run_worker):
    result = functions.send_mail.enqueue("ada@example.com", subject="Hi")
    assert Job.objects.using("jobs").filter(pk=int(result.id)).exists()
    run_worker("mail")
    result.refresh()
    assert result.status.name == "SUCCESSFUL"


@pytest.mark.slow
def test_a_worker_process_drains_the_jobs_database():
    kinetik.create_many("test.echo", [{"n": n} for n in range(50)])
    done = subprocess.run(
        [sys.executable, "-m", "django", "kinetik_worker", "--burst"],
        cwd=ROOT,
        env=worker_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert Job.objects.using("jobs").filter(status=Status.COMPLETED).count() == 50


# -- the run of this file, from every ordinary run -----------------------------


@pytest.mark.slow
@pytest.mark.jobs_apart(False)
@pytest.mark.django_db(databases=["default"])
def test_the_suite_of_jobs_on_their_own_database():
    env = {key: value for key, value in os.environ.items() if not key.startswith("DJANGO_")}
    env.update(
        KINETIK_TEST_JOBS_DB="separate",
        TOX_ENV_NAME=f"{os.environ.get('TOX_ENV_NAME', 'local')}_apart",
        PYTHONPATH=str(ROOT),
    )
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    assert " passed" in done.stdout and "skipped" not in done.stdout, done.stdout[-2000:]
