"""A real browser for the admin tests: Debian's chromium, driven by Playwright."""

import os
import shutil
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from django_kinetik.models import Status
from tests.conftest import IN_CI
from tests.factories import FinishedJobFactory, JobFactory, JobLogFactory, JobRunFactory, WorkerFactory

SCREENSHOTS = Path(
    os.environ.get("KINETIK_SCREENSHOTS") or Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
)
#: the admin must fit a laptop's 1280 px as well as a desktop's 1920 px
WIDTHS = (1280, 1920)


@pytest.fixture(scope="session")
def browser():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        if IN_CI:
            pytest.fail("chromium is not installed (apt-get install chromium); CI must run the browser tests")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    # Playwright's sync API keeps an event loop in this thread; the ORM calls the
    # tests make between page actions are plain synchronous code all the same.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield browser
        browser.close()


@pytest.fixture(
    params=[(theme, width) for width in WIDTHS for theme in ("light", "dark")], ids=lambda p: f"{p[0]}-{p[1]}"
)
def page(request, browser, live_server):
    # The admin's theme follows prefers-color-scheme until someone clicks its toggle.
    theme, width = request.param
    context = browser.new_context(color_scheme=theme, viewport={"width": width, "height": 900})
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.theme = theme
    page.width = width
    page.base = live_server.url
    yield page
    context.close()


@pytest.fixture
def screenshot(page):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(name):
        page.screenshot(path=str(SCREENSHOTS / f"{name}-{page.width}-{page.theme}.png"), full_page=True)

    return take


@pytest.fixture
def jobs():
    worker = WorkerFactory(
        name="worker-1:4242:abc", host="worker-1", pid=4242, state="online", last_heartbeat=timezone.now()
    )
    queued = [JobFactory(task="mail.send", tag="mail", data={"to": f"user{n}@example.com"}) for n in range(3)]
    failed = FinishedJobFactory(
        task="billing.charge",
        tag="billing",
        status=Status.FAILED,
        error="card declined",
        error_code="E_CARD",
        data={"customer": 42, "amount": "19.90"},
        worker=worker,
        attempts=2,
    )
    JobRunFactory(
        job=failed,
        attempt=1,
        outcome="failed",
        error="card declined",
        traceback="Traceback (most recent call last):\n  ...\nPaymentError: card declined",
    )
    running = JobFactory(
        task="report.build",
        tag="reports",
        status=Status.ACTIVE,
        attempts=1,
        worker=worker,
        started_at=timezone.now(),
        progress_current=1,
        progress_total=4,
    )
    JobLogFactory(job=running, message="starting", data={"rows": 4})
    for minute in range(0, 60, 3):
        FinishedJobFactory(
            task="mail.send", tag="mail", finished_at=timezone.now() - timezone.timedelta(minutes=minute)
        )
    FinishedJobFactory(task="mail.send", tag="mail", status=Status.TIMEOUT, finished_at=timezone.now())
    return {"queued": queued, "failed": failed, "running": running}


def log_in(page):
    User.objects.create_superuser("admin", "admin@example.com", "secret-password")
    page.goto(page.base + "/admin/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "secret-password")
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")
