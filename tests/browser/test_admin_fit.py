"""The admin as a user sees it at 1280 and 1920 px, light and dark: it fits, and it tells the truth.

Each test saves screenshots (``$KINETIK_SCREENSHOTS``, else test-artifacts/screenshots).
"""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from django_kinetik.models import Status, TagState
from tests.browser.conftest import log_in
from tests.factories import FinishedJobFactory, JobFactory, JobRunFactory, WorkerFactory
from tests.test_admin_pages import TRACEBACK

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LONG_TASK = "reports.quarterly." + "very_long_segment_" * 10 + "x" * 2
LONG_TASK = LONG_TASK[:200]


def fits(page, selector, container):
    return page.evaluate(
        "([s, c]) => [document.querySelector(s).scrollWidth, document.querySelector(c).clientWidth]",
        [selector, container],
    )


def assert_theme(page):
    # The admin follows the browser's colour scheme: a dark page in dark mode, a light one in light.
    rgb = page.evaluate("getComputedStyle(document.body).backgroundColor")
    red, green, blue = (int(part) for part in rgb[rgb.index("(") + 1 : rgb.index(")")].split(",")[:3])
    assert (red + green + blue < 3 * 128) == (page.theme == "dark"), rgb


def test_the_job_list_shows_every_column_without_a_scroll(page, jobs, screenshot):
    worker = WorkerFactory(
        name="a-rather-long-hostname.eu-west-1.compute.internal:123456:9f8e7d",
        host="a-rather-long-hostname.eu-west-1.compute.internal",
        pid=123456,
    )
    JobFactory(
        task=LONG_TASK,
        tag="a-very-long-tag-name-indeed",
        status=Status.ACTIVE,
        worker=worker,
        progress_current=2,
        progress_total=3,
        attempts=12,  # the widest status cell: "Active 67% x12"
    )
    JobFactory(task="mail.send", tag="mail", status=Status.DELAYED, run_at=timezone.now() + timedelta(days=3))
    log_in(page)
    page.goto(page.base + "/admin/django_kinetik/job/")
    assert_theme(page)
    table_width, box_width = fits(page, "#result_list", ".results")
    assert table_width <= box_width, f"the table is {table_width} px in a {box_width} px box"
    headers = page.locator("#result_list thead th").all_inner_texts()
    assert [h.strip().upper() for h in headers[1:]] == ["ID", "TASK", "TAG", "STATUS", "CREATED", "TOOK", "WORKER"]
    # The long task name is cut short on the list; it is whole on hover.
    assert page.locator(f".kinetik-cut-task[title='{LONG_TASK}']").count() == 1
    screenshot("fit-job-list")


def test_the_dashboard_fits_and_its_chart_reads_right(page, jobs, screenshot):
    FinishedJobFactory.create_batch(3, task=LONG_TASK, tag="reports", finished_at=timezone.now())
    log_in(page)
    page.goto(page.base + "/admin/django_kinetik/job/dashboard/")
    page.wait_for_selector("svg.kinetik-chart")
    assert_theme(page)
    document_width, viewport = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert document_width <= viewport, f"the page is {document_width} px in a {viewport} px window"
    # Every table in full, the Pause buttons too: nothing hidden behind a scroll of its own.
    for table in ("#kinetik-by-task", "#kinetik-by-tag", ".kinetik-workers"):
        table_width, box_width = fits(page, table, f"div.kinetik-scroll:has(> {table})")
        assert table_width <= box_width, f"{table} is {table_width} px in a {box_width} px box"
    # The y-axis: non-negative numbers, increasing up the chart.
    ticks = page.evaluate(
        "[...document.querySelectorAll('.kinetik-y-label')].map(t => [t.getBBox().y, Number(t.textContent)])"
    )
    values = [value for _, value in sorted(ticks, reverse=True)]  # bottom first
    assert values[0] == 0 and values == sorted(set(values)) and len(values) >= 2, ticks
    # The time axis ends now: its last label is this minute (or the one before, across a minute's turn).
    last = page.locator(".kinetik-x-label").last.text_content()
    now = timezone.localtime()
    assert last in {f"{now:%H:%M}", f"{now - timedelta(minutes=1):%H:%M}"}, last
    chart_right = page.evaluate("document.querySelector('.kinetik-x-label:last-of-type').getBoundingClientRect().right")
    assert chart_right <= page.evaluate("document.querySelector('svg.kinetik-chart').getBoundingClientRect().right")
    screenshot("fit-dashboard")


def breadcrumb_style(page):
    # What a user sees of the trail: its element, colour, inset, and the text with its separators' spacing.
    return page.evaluate(
        """(() => { const c = document.querySelector('nav[aria-label="Breadcrumbs"] > *');
        const s = getComputedStyle(c);
        return [c.tagName, s.backgroundColor, s.paddingLeft, c.innerText.split("Kinetik jobs")[0]]; })()"""
    )


def test_kinetik_s_breadcrumbs_look_like_django_s_own(page, jobs, screenshot):
    log_in(page)
    page.goto(page.base + "/admin/django_kinetik/job/")
    djangos = breadcrumb_style(page)
    assert djangos[1] not in ("rgba(0, 0, 0, 0)", "transparent")
    for path, name in (
        ("/admin/django_kinetik/job/dashboard/", None),
        (f"/admin/django_kinetik/job/{jobs['running'].pk}/change/", "fit-breadcrumbs-job"),
        ("/admin/django_kinetik/tagstate/", None),
    ):
        page.goto(page.base + path)
        assert breadcrumb_style(page) == djangos, path
        if name:
            screenshot(name)


def test_pausing_and_resuming_a_tag_are_buttons_that_ask_first(page, jobs, screenshot):
    log_in(page)
    page.goto(page.base + "/admin/django_kinetik/job/dashboard/")
    page.click("#kinetik-by-tag tr[data-tag=mail] a.kinetik-pause")
    page.wait_for_selector("text=Yes, pause mail")
    assert not TagState.objects.filter(paused=True).exists()  # asked, not done
    screenshot("fit-confirm-pause")
    page.click("text=Yes, pause mail")
    page.wait_for_selector("text=Tag mail paused")
    assert page.url.endswith("/job/dashboard/")
    assert TagState.objects.get(tag="mail").paused
    assert page.locator("#kinetik-by-tag tr[data-tag=mail] a.kinetik-resume").count() == 1
    page.goto(page.base + "/admin/django_kinetik/tagstate/")
    assert page.locator("#kinetik-tags tr[data-tag=mail]").inner_text().split("\t")[1].strip() == "Paused"
    screenshot("fit-tags")
    page.click("#kinetik-tags tr[data-tag=mail] a.kinetik-resume")
    page.click("text=Yes, resume mail")
    page.wait_for_selector("text=Tag mail resumed")
    assert not TagState.objects.get(tag="mail").paused
    assert page.locator("#kinetik-tags tr[data-tag=mail] a.kinetik-pause").count() == 1


def test_the_workers_page_tells_a_lost_worker_from_a_live_one(page, jobs, screenshot):
    WorkerFactory(
        name="killed-host:999:dead",
        host="killed-host",
        state="online",
        last_heartbeat=timezone.now() - timedelta(minutes=5),
    )
    log_in(page)
    page.goto(page.base + "/admin/django_kinetik/worker/")
    assert_theme(page)
    killed = page.locator("#result_list tr", has_text="killed-host:999:dead").inner_text()
    assert "Lost" in killed and "Online" not in killed and re.search(r"5 min [0-9] s ago", killed)
    live = page.locator("#result_list tr", has_text="worker-1").inner_text()
    assert "Online" in live and " s ago" in live and "alpha" in live and "[" not in live
    table_width, box_width = fits(page, "#result_list", ".results")
    assert table_width <= box_width, f"the table is {table_width} px in a {box_width} px box"
    screenshot("fit-workers")
    page.locator("#result_list tr", has_text="worker-1").locator("th a, td a").first.click()
    page.wait_for_selector("#content-main")
    assert page.locator("input[name=_save], a.deletelink").count() == 0  # no edit or delete of a live worker
    screenshot("fit-worker-live")


def test_a_failed_job_s_traceback_starts_at_the_user_s_frame(page, jobs, screenshot):
    failed = FinishedJobFactory(task="billing.charge", status=Status.FAILED, error="card declined", attempts=1)
    JobRunFactory(job=failed, attempt=1, outcome="failed", error="card declined", traceback=TRACEBACK)
    log_in(page)
    page.goto(page.base + f"/admin/django_kinetik/job/{failed.pk}/change/")
    lines = page.locator("#kinetik-traceback").inner_text().splitlines()
    assert lines[1].strip() == "[2 frames in django_kinetik folded]"
    assert "billing/tasks.py" in lines[2]
    assert not page.locator("#kinetik-raw-traceback").is_visible()
    page.click("text=Full traceback")
    assert "django_kinetik/execution.py" in page.locator("#kinetik-raw-traceback").inner_text()
    screenshot("fit-job-traceback")


def test_a_running_job_s_page_shows_its_attempt_and_current_of_total(page, jobs, screenshot):
    log_in(page)
    page.goto(page.base + f"/admin/django_kinetik/job/{jobs['running'].pk}/change/")
    assert page.locator("#kinetik-progress").inner_text().strip() == "1 of 4 (25%)"
    attempt = page.locator(".kinetik-running-attempt").inner_text()
    assert "Running" in attempt and "so far" in attempt
    assert page.locator("text=No attempt has finished yet").count() == 0
    document_width, viewport = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert document_width <= viewport
    screenshot("fit-job-running")
