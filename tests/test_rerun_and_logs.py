"""A job run again starts over; a worker logs each django.tasks job once."""

import subprocess
import sys

import pytest

import django_kinetik as kinetik
from django_kinetik.models import Status
from tests.conftest import ROOT, worker_env


@pytest.mark.django_db(transaction=True)
def test_a_retried_job_starts_over_without_the_progress_and_times_of_its_last_run(run_worker, temp_task):
    def half_then_fail(job):
        job.progress(1, 2, {"step": "copy"})
        raise RuntimeError("disk full")

    temp_task("rerun.half", half_then_fail, tag="alpha")
    job = kinetik.create("rerun.half")
    run_worker("alpha")
    job.refresh_from_db()
    assert (job.status, job.progress_current, job.progress_total) == (Status.FAILED, 1, 2)
    assert job.started_at is not None and job.finished_at is not None

    kinetik.retry(job)
    job.refresh_from_db()
    assert job.status == Status.QUEUED
    assert (job.progress_current, job.progress_total, job.progress_data) == (None, None, None)
    assert (job.started_at, job.finished_at, job.error, job.attempts) == (None, None, "", 0)
    assert job.progress_percent is None
    # Its history stays.
    assert [run.outcome for run in job.runs.all()] == ["failed"]


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_worker_logs_each_django_tasks_job_once_and_a_failure_in_django_s_words_with_its_traceback():
    from tests.testapp.django_tasks import add, fail

    added = add.enqueue(1, 2)
    failed = fail.enqueue("no luck")
    env = dict(worker_env(), DJANGO_SETTINGS_MODULE="tests.settings_task_logging")
    done = subprocess.run(
        [sys.executable, "-m", "django", "kinetik_worker", "default", "--burst", "-v", "1"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    about_added = [line for line in lines if f"Job {added.id} " in line or f"Task id={added.id} " in line]
    assert len(about_added) == 1, done.stderr
    assert about_added[0].endswith(f"Job {added.id} (tests.testapp.django_tasks.add) completed.")
    # A failure: Django's error (for error monitoring), with the traceback, and no kinetik line repeating it.
    about_failed = [line for line in lines if f"Job {failed.id} " in line or f"Task id={failed.id} " in line]
    assert about_failed == [f"Task id={failed.id} path=tests.testapp.django_tasks.fail state=FAILED"], done.stderr
    assert "ValueError: no luck" in done.stderr
