"""The admin in a real browser: log in, filter, select, cancel, retry, detail, live updates, dashboard."""

import re
import time

import pytest

from django_kinetik import feed
from django_kinetik.context import JobContext
from django_kinetik.models import Job, Status
from tests.browser.conftest import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_filter_select_cancel_and_retry(page, jobs, screenshot):
    log_in(page)
    page.goto(page.base + "/admin/django_kinetik/job/")
    assert page.locator("#result_list tbody tr").count() == 26
    screenshot("job-list")

    page.click("#changelist-filter >> text=Queued")
    page.wait_for_url(re.compile(r"status__exact=queued"))
    assert page.locator("#result_list tbody tr").count() == 3

    page.locator("#result_list tbody tr input.action-select").nth(0).check()
    page.locator("#result_list tbody tr input.action-select").nth(1).check()
    page.select_option("select[name=action]", "cancel_jobs")
    page.click("button[name=index]")
    page.wait_for_selector("text=Yes, cancel 2 jobs")
    screenshot("confirm-cancel")
    page.click("text=Yes, cancel 2 jobs")
    page.wait_for_selector("text=2 jobs cancelled.")
    assert Job.objects.filter(status=Status.CANCELLED).count() == 2

    page.goto(page.base + "/admin/django_kinetik/job/?status__exact=failed")
    page.check("#action-toggle")
    page.select_option("select[name=action]", "retry_jobs")
    page.click("button[name=index]")
    page.click("text=Yes, retry 1 job")
    page.wait_for_selector("text=1 job queued again.")
    jobs["failed"].refresh_from_db()
    assert jobs["failed"].status == Status.QUEUED


def test_job_detail_updates_live_and_edit_and_retry(page, jobs, screenshot):
    log_in(page)
    running = jobs["running"]
    requested = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(page.base + f"/admin/django_kinetik/job/{running.pk}/change/")
    assert page.locator("#kinetik-progress").inner_text().strip() == "1 of 4 (25%)"
    running_attempt = page.locator(".kinetik-running-attempt").inner_text()
    assert "Running" in running_attempt and running.worker.name in running_attempt
    screenshot("job-detail-running")
    # The worker reports progress and logs; the open page shows them without a reload
    # (following the job's event stream on PostgreSQL, polling on SQLite).
    context = JobContext(running, None, "default")
    context.progress(3, 4)
    context.log("<b>row 3</b> written", {"row": 3})
    page.wait_for_function("document.querySelector('#kinetik-progress').innerText.trim() === '3 of 4 (75%)'")
    page.wait_for_selector("#kinetik-log td:text('<b>row 3</b> written')")
    assert page.evaluate("performance.getEntriesByType('navigation').length") == 1  # same page, not reloaded
    following = any(url.endswith(f"/job/{running.pk}/events/") for url in requested)
    assert following == feed.available()

    failed = jobs["failed"]
    page.goto(page.base + f"/admin/django_kinetik/job/{failed.pk}/change/")
    assert "card declined" in page.inner_text("#content-main")
    screenshot("job-detail-failed")
    page.fill("textarea[name=data]", '{"customer": 42, "amount": "9.90"}')
    page.click("text=Save data and retry")
    page.wait_for_selector("text=queued again with the corrected data")
    failed.refresh_from_db()
    assert (failed.status, failed.data["amount"]) == (Status.QUEUED, "9.90")


def test_job_detail_falls_back_to_polling_when_the_stream_fails(page, jobs):
    log_in(page)
    running = jobs["running"]
    # A proxy that refuses the stream: the page polls the job instead.
    page.route("**/events/", lambda route: route.fulfill(status=503, body="no stream here"))
    page.goto(page.base + f"/admin/django_kinetik/job/{running.pk}/change/")
    JobContext(running, None, "default").progress(2, 4)
    page.wait_for_function("document.querySelector('#kinetik-progress').innerText.trim() === '2 of 4 (50%)'")


def test_dashboard(page, jobs, screenshot):
    log_in(page)
    page.goto(page.base + "/admin/django_kinetik/")
    page.click("text=Dashboard")
    page.wait_for_selector("svg.kinetik-chart")
    assert page.locator("svg.kinetik-chart rect.kinetik-bar-completed").count() == 20
    assert page.locator("svg.kinetik-chart rect.kinetik-bar-failed").count() == 1
    assert "worker-1" in page.inner_text("#content-main")
    screenshot("dashboard")
    started = time.monotonic()
    page.reload()
    page.wait_for_selector("svg.kinetik-chart")
    assert time.monotonic() - started < 5
