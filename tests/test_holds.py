"""``raise kinetik.RateLimited(retry_after=...)``: a downstream's "come back later" holds the task or key fleet-wide."""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

import django_kinetik as kinetik
from django_kinetik.models import Hold, Job, Status
from django_kinetik.values.durations import BareNumberWarning

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("claim_path")]


def calls_the_api(job):
    if job.data.get("busy"):
        raise kinetik.RateLimited(retry_after="120", reason="HTTP 429 from the mail API")
    return "sent"


def test_a_429_holds_the_task_until_retry_after_without_using_an_attempt(run_worker, temp_task):
    temp_task("test.mail_api", calls_the_api, tag="alpha", retries=0)
    busy = kinetik.create("test.mail_api", {"busy": True})
    waiting = kinetik.create_many("test.mail_api", [{"n": n} for n in range(3)])
    other = kinetik.create("test.echo")
    before = timezone.now()
    run_worker(concurrency=1)
    busy.refresh_from_db()
    assert (busy.status, busy.attempts) == (Status.DELAYED, 0)
    assert before + timedelta(seconds=119) < busy.run_at < timezone.now() + timedelta(seconds=121)
    assert list(busy.runs.values_list("outcome", flat=True)) == ["rate_limited"]
    hold = Hold.objects.get()
    assert (hold.task, hold.key, hold.until) == ("test.mail_api", "", busy.run_at)
    assert "HTTP 429" in hold.reason
    # No other job of the task started; they wait for the hold. Other tasks go on.
    for job in Job.objects.filter(pk__in=[job.pk for job in waiting]):
        assert (job.status, job.attempts) == (Status.DELAYED, 0) and job.run_at >= hold.until
    assert Job.objects.get(pk=other.pk).status == Status.COMPLETED


def test_a_hold_on_one_limit_key_lets_the_other_keys_run(run_worker, temp_task):
    temp_task("test.per_customer", calls_the_api, tag="alpha", concurrency=5, limit_by="customer")
    busy = kinetik.create("test.per_customer", {"customer": "acme", "busy": True})
    same = kinetik.create("test.per_customer", {"customer": "acme"})
    others = kinetik.create_many("test.per_customer", [{"customer": "globex"} for _ in range(3)])
    run_worker(concurrency=1)
    assert Hold.objects.get().key == busy.limit_key
    assert Job.objects.get(pk=same.pk).status == Status.DELAYED
    assert {job.status for job in Job.objects.filter(pk__in=[job.pk for job in others])} == {Status.COMPLETED}


def test_a_job_created_while_its_task_is_held_waits_for_the_hold(run_worker, temp_task):
    temp_task("test.mail_api", calls_the_api, tag="alpha")
    kinetik.create("test.mail_api", {"busy": True})
    run_worker()
    later = kinetik.create("test.mail_api")  # queued: the workers leave it out
    run_worker()
    assert Job.objects.get(pk=later.pk).status == Status.QUEUED
    Hold.objects.update(until=timezone.now() - timedelta(seconds=1))  # the hold ends
    run_worker()
    assert Job.objects.get(pk=later.pk).status == Status.COMPLETED


def test_the_hold_shows_in_kinetik_tasks_with_its_end(run_worker, temp_task, capsys):
    temp_task("test.mail_api", calls_the_api, tag="alpha")
    kinetik.create("test.mail_api", {"busy": True})
    run_worker()
    until = Hold.objects.get().until
    call_command("kinetik_tasks")
    assert f"held until {until:%Y-%m-%d %H:%M:%S} UTC" in capsys.readouterr().out


@pytest.mark.parametrize(
    "retry_after, seconds",
    [(120_000, 120), ("120", 120), ("2m", 120), (timedelta(minutes=2), 120), (2500, 2.5)],
)
def test_retry_after_takes_the_header_as_it_came(retry_after, seconds):
    expected = timezone.now() + timedelta(seconds=seconds)
    assert abs((kinetik.RateLimited(retry_after).until - expected).total_seconds()) < 1


def test_a_number_is_milliseconds_as_everywhere_in_python_and_one_under_a_second_warns():
    with pytest.warns(BareNumberWarning, match="RateLimited retry_after=120 is 120 milliseconds"):
        limited = kinetik.RateLimited(120)
    assert (limited.until - timezone.now()).total_seconds() < 1


def test_retry_after_takes_an_http_date():
    assert kinetik.RateLimited("Wed, 21 Oct 2026 07:28:00 GMT").until.isoformat() == "2026-10-21T07:28:00+00:00"


def test_a_retry_after_that_means_nothing_is_refused_where_it_is_raised():
    with pytest.raises(ValueError, match="RateLimited retry_after"):
        kinetik.RateLimited("when you feel like it")


def test_the_hold_shows_in_the_api_and_the_admin_dashboard(run_worker, temp_task, admin_client):
    temp_task("test.mail_api", calls_the_api, tag="alpha")
    kinetik.create("test.mail_api", {"busy": True})
    run_worker()
    until = Hold.objects.get().until
    holds = admin_client.get("/kinetik/api/stats").json()["holds"]
    assert [(hold["task"], hold["key"]) for hold in holds] == [("test.mail_api", "")]
    assert holds[0]["until"].startswith(until.strftime("%Y-%m-%dT%H:%M:%S"))
    page = admin_client.get("/admin/django_kinetik/job/dashboard/").content.decode()
    assert "Holds" in page and f"{until:%Y-%m-%d %H:%M:%S}" in page and "HTTP 429 from the mail API" in page
