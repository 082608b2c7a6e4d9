"""``raise kinetik.Snooze(delay)``: "not now", without using an attempt, and never for ever."""

from datetime import timedelta

import pytest
from django.utils import timezone

import django_kinetik as kinetik
from django_kinetik.models import Status

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("claim_path")]


def test_a_snooze_uses_no_attempt_so_a_task_without_retries_still_completes(run_worker, temp_task):
    def busy_then_done(job):
        if not job.model.snoozes:
            raise kinetik.Snooze(0)  # the downstream is busy: again, right away
        return "done"

    temp_task("test.snoozy", busy_then_done, tag="alpha", retries=0)
    job = kinetik.create("test.snoozy")
    run_worker()
    job.refresh_from_db()
    assert (job.status, job.result, job.attempts, job.snoozes) == (Status.COMPLETED, "done", 1, 1)
    assert list(job.runs.values_list("attempt", "outcome")) == [(1, "snoozed"), (1, "completed")]


def test_a_snooze_puts_the_job_back_as_delayed_for_the_delay(run_worker, temp_task):
    def later(job):
        raise kinetik.Snooze("10m")

    temp_task("test.later", later, tag="alpha")
    job = kinetik.create("test.later")
    before = timezone.now()
    run_worker()
    job.refresh_from_db()
    assert (job.status, job.attempts, job.snoozes) == (Status.DELAYED, 0, 1)
    assert before + timedelta(minutes=10) <= job.run_at <= timezone.now() + timedelta(minutes=10)
    assert job.runs.get().outcome == "snoozed"


def test_an_endless_snooze_fails_at_the_tasks_cap_with_a_clear_error(run_worker, temp_task):
    def forever(job):
        raise kinetik.Snooze(timedelta(0))

    temp_task("test.forever", forever, tag="alpha", max_snoozes=2)
    job = kinetik.create("test.forever")
    run_worker()
    job.refresh_from_db()
    assert (job.status, job.error_code) == (Status.FAILED, "snooze_limit")
    assert "max_snoozes=2" in job.error
    assert list(job.runs.values_list("outcome", flat=True)) == ["snoozed", "snoozed", "failed"]


def test_a_bad_snooze_delay_is_refused_where_it_is_raised():
    with pytest.raises(ValueError, match="Snooze delay"):
        kinetik.Snooze("whenever")
