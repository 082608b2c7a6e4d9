"""What the admin's pages tell: compact lists, filters from the data, a chart with sane axes,
Django's own breadcrumbs, workers as they are, tags paused by buttons, a running job, tracebacks."""

import re
from datetime import timedelta

import django
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from django_kinetik.admin.dashboard import Minute, axis_step, chart_svg
from django_kinetik.admin.tracebacks import fold_kinetik_frames
from django_kinetik.models import Status, TagState, Worker
from tests.factories import FinishedJobFactory, JobFactory, JobRunFactory, WorkerFactory

pytestmark = pytest.mark.django_db

LIST = "admin:django_kinetik_job_changelist"
TAGS = "admin:django_kinetik_tagstate_changelist"


def url(name, *args):
    return reverse(f"admin:django_kinetik_job_{name}", args=args)


def rows(response):
    return list(response.context["cl"].result_list)


# -- the job list ---------------------------------------------------------------------


def test_the_list_s_times_are_compact_with_the_whole_time_on_hover(staff):
    today = JobFactory()
    earlier = JobFactory(created_at=timezone.now().replace(year=2024, month=3, day=9, hour=8, minute=5, second=1))
    delayed = JobFactory(status=Status.DELAYED, run_at=timezone.now() + timedelta(days=400))
    html = staff.get(reverse(LIST)).content.decode()
    assert f'title="{today.created_at:%Y-%m-%d %H:%M:%S}">{today.created_at:%H:%M:%S}</time>' in html
    assert 'title="2024-03-09 08:05:01">2024-03-09</time>' in html and earlier.pk
    assert f'runs <time datetime="{delayed.run_at.isoformat()}"' in html


def test_filter_choices_come_from_the_data_one_index_look_up_each(staff):
    # A django.tasks job's tag and a task another service defines: in the data, not in this registry.
    JobFactory(task="tests.testapp.django_tasks.add", tag="default")
    JobFactory(task="billing.elsewhere.charge", tag="billing")
    JobFactory.create_batch(3, task="test.echo", tag="alpha")
    with CaptureQueriesContext(connection) as captured:
        page = staff.get(reverse(LIST))
    html = page.content.decode()
    for choice in ("?tag=default", "?tag=billing", "?tag=alpha", "?task=billing.elsewhere.charge", "?task=test.echo"):
        assert choice in html
    assert "?task=test.spin" not in html and "?tag=gamma" not in html  # registered, but no job has them
    scans = [q["sql"] for q in captured if "WITH RECURSIVE" in q["sql"] or "SELECT DISTINCT" in q["sql"]]
    assert len(scans) == 2  # one for the tags, one for the tasks
    assert rows(staff.get(reverse(LIST), {"task": "billing.elsewhere.charge"}))[0].tag == "billing"


def test_a_filter_keeps_a_chosen_value_no_job_has_any_more(staff):
    JobFactory(tag="alpha")
    page = staff.get(reverse(LIST), {"tag": "gone"})
    assert rows(page) == [] and "?tag=gone" in page.content.decode()


# -- the dashboard's chart --------------------------------------------------------------


def test_the_chart_s_axis_counts_up_from_zero_in_round_steps():
    now = timezone.now().replace(second=0, microsecond=0)
    minutes = [Minute(now - timedelta(minutes=59 - n), n % 7, 11 if n == 30 else 0) for n in range(60)]
    svg = str(chart_svg(minutes))
    labels = [int(text) for text in re.findall(r'kinetik-y-label"[^>]*>(\d+)<', svg)]
    ys = [float(y) for y in re.findall(r'kinetik-y-label" x="[\d.]+" y="([\d.]+)"', svg)]
    assert labels == [0, 5, 10, 15]  # the peak is 2 completed + 11 failed = 13
    assert ys == sorted(ys, reverse=True)  # 0 at the bottom, counting up the page
    assert [axis_step(peak) for peak in (1, 4, 5, 9, 16, 40, 41, 900)] == [1, 1, 2, 5, 5, 10, 20, 500]


def test_the_chart_s_last_time_label_is_the_current_minute(staff):
    html = staff.get(url("dashboard")).content.decode()
    labels = re.findall(r'kinetik-x-label"[^>]*>(\d\d:\d\d)<', html)
    assert (
        labels[-1] == f"{timezone.localtime():%H:%M}"
        or labels[-1] == f"{timezone.localtime() - timedelta(minutes=1):%H:%M}"
    )
    assert len(labels) == 6


def test_a_long_task_name_can_wrap_on_the_dashboard(staff):
    JobFactory(task="x" * 200)
    html = staff.get(url("dashboard")).content.decode()
    assert '<td class="kinetik-name"><a href="/admin/django_kinetik/job/?task=' + "x" * 200 in html


# -- breadcrumbs ------------------------------------------------------------------------


@pytest.mark.parametrize("page", ["dashboard", "change", "tags", "confirm"])
def test_kinetik_s_pages_use_the_running_django_s_breadcrumbs(staff, page):
    job = JobFactory()
    target = {
        "dashboard": url("dashboard"),
        "change": url("change", job.pk),
        "tags": reverse(TAGS),
        "confirm": reverse("admin:django_kinetik_tagstate_pause") + "?tag=alpha",
    }[page]
    html = staff.get(target).content.decode()
    if django.VERSION >= (6, 1):
        assert '<ol class="breadcrumbs">\n<li><a href="/admin/">Home</a></li>\n' in html
        assert '<li aria-current="page">' in html and '<div class="breadcrumbs">' not in html
    else:
        assert '<div class="breadcrumbs"><a href="/admin/">Home</a> &rsaquo; ' in html
        assert '<ol class="breadcrumbs">' not in html


# -- workers ----------------------------------------------------------------------------


def worker_page(client, worker):
    return client.get(reverse("admin:django_kinetik_worker_change", args=[worker.pk]))


def test_the_workers_page_shows_heartbeats_in_seconds_lost_workers_and_tags_as_text(staff, settings):
    settings.KINETIK = {**settings.KINETIK, "LEASE": "30s"}
    now = timezone.now()
    WorkerFactory(name="fresh", state="online", last_heartbeat=now - timedelta(seconds=4), tags=["mail", "reports"])
    WorkerFactory(name="killed", state="online", last_heartbeat=now - timedelta(seconds=95))
    WorkerFactory(name="gone", state="offline", last_heartbeat=now - timedelta(hours=3))
    html = staff.get(reverse("admin:django_kinetik_worker_changelist")).content.decode()
    by_name = {row[0]: row for row in re.findall(r"<tr>.*?>(fresh|killed|gone)<(.*?)</tr>", html, re.S)}
    assert "Online" in by_name["fresh"][1] and re.search(r">[45] s ago<", by_name["fresh"][1])
    assert ">mail, reports<" in by_name["fresh"][1] and "[&quot;" not in html
    assert ">Lost<" in by_name["killed"][1] and "95 s ago" in by_name["killed"][1]
    assert "Offline" in by_name["gone"][1] and "3 h 0 min ago" in by_name["gone"][1]
    assert "minutes ago" not in html


def test_a_live_worker_can_be_neither_edited_nor_deleted(staff):
    live = WorkerFactory(state="online", last_heartbeat=timezone.now())
    dead = WorkerFactory(state="online", last_heartbeat=timezone.now() - timedelta(hours=1))
    html = worker_page(staff, live).content.decode()
    assert 'name="_save"' not in html and "deletelink" not in html
    assert staff.post(reverse("admin:django_kinetik_worker_delete", args=[live.pk]), {"post": "yes"}).status_code == 403
    assert "deletelink" in worker_page(staff, dead).content.decode()  # a lost one can be tidied away
    workers = reverse("admin:django_kinetik_worker_changelist")
    both = {"action": "delete_selected", "_selected_action": [live.pk, dead.pk]}
    assert "Cannot delete worker" in staff.post(workers, both).content.decode()  # Django's own refusal
    assert staff.post(workers, {**both, "post": "yes"}).status_code == 403
    assert Worker.objects.count() == 2
    staff.post(workers, {**both, "_selected_action": [dead.pk], "post": "yes"})
    assert list(Worker.objects.values_list("pk", flat=True)) == [live.pk]


# -- tags -------------------------------------------------------------------------------


def test_the_tag_list_shows_every_tag_in_the_data_with_a_button(staff):
    JobFactory(tag="default", task="tests.testapp.django_tasks.add")  # a django.tasks job's tag
    TagState.objects.create(tag="mail", paused=True)
    html = staff.get(reverse(TAGS)).content.decode()
    for tag in ("default", "mail", "alpha", "gamma"):  # the data, the paused, the registry's
        assert f'<tr data-tag="{tag}">' in html
    assert 'class="button kinetik-resume" href="/admin/django_kinetik/tagstate/resume/?tag=mail' in html
    assert 'class="button kinetik-pause" href="/admin/django_kinetik/tagstate/pause/?tag=default' in html
    assert 'name="paused"' not in html and "Changed at" not in html  # no raw form
    assert reverse("admin:django_kinetik_tagstate_add") not in html


def test_pausing_asks_first_then_pauses_and_resuming_resumes(staff):
    JobFactory(tag="mail")
    back = url("dashboard")
    confirm = staff.get(reverse("admin:django_kinetik_tagstate_pause"), {"tag": "mail", "next": back})
    assert "Yes, pause mail" in confirm.content.decode()
    assert not TagState.objects.exists()  # asking changed nothing
    done = staff.post(reverse("admin:django_kinetik_tagstate_pause"), {"tag": "mail", "next": back}, follow=True)
    assert done.redirect_chain[-1][0] == back
    assert "Tag mail paused: workers stop claiming its jobs within one interval" in done.content.decode()
    assert TagState.objects.get(tag="mail").paused
    assert 'href="/admin/django_kinetik/tagstate/resume/?tag=mail' in done.content.decode()  # the dashboard's button
    staff.post(reverse("admin:django_kinetik_tagstate_resume"), {"tag": "mail"})
    assert not TagState.objects.get(tag="mail").paused


@pytest.mark.parametrize("tag", ["", "two words", "x" * 300, "a,b", "\x00"])
def test_a_forged_tag_is_refused_with_a_message_and_nothing_written(staff, tag):
    page = staff.post(reverse("admin:django_kinetik_tagstate_pause"), {"tag": tag}, follow=True)
    assert page.status_code == 200
    assert not TagState.objects.exists()


def test_pausing_needs_the_change_permission_and_goes_nowhere_but_this_site(staff, client):
    from django.contrib.auth.models import Permission, User

    viewer = User.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.set(Permission.objects.filter(codename__in=["view_tagstate", "view_job"]))
    client.force_login(viewer)
    assert "kinetik-pause" not in client.get(reverse(TAGS)).content.decode()
    assert client.post(reverse("admin:django_kinetik_tagstate_pause"), {"tag": "mail"}).status_code == 403
    away = staff.post(reverse("admin:django_kinetik_tagstate_pause"), {"tag": "mail", "next": "https://evil.example/"})
    assert away["Location"] == reverse(TAGS)


# -- one job ----------------------------------------------------------------------------


def test_a_running_job_s_page_shows_current_of_total_and_the_running_attempt(staff):
    worker = WorkerFactory(name="web-1:7:abc")
    job = JobFactory(
        status=Status.ACTIVE,
        attempts=2,
        worker=worker,
        started_at=timezone.now() - timedelta(seconds=12),
        progress_current=3,
        progress_total=4,
    )
    JobRunFactory(job=job, attempt=1, outcome="failed", error="first try")
    html = staff.get(url("change", job.pk)).content.decode()
    assert "3 of 4 (75%)" in html
    running = re.search(r'<tr class="kinetik-running-attempt">(.*?)</tr>', html, re.S).group(1)
    assert "<td>2</td>" in running and "Running" in running and "web-1:7:abc" in running
    assert re.search(r"1[23]\.\d s so far", running)
    assert "No attempt has finished yet" not in html


TRACEBACK = """Traceback (most recent call last):
  File "/srv/venv/lib/python3.12/site-packages/django_kinetik/execution.py", line 76, in perform
    result = installed().run(context)
             ^^^^^^^^^^^^^^^^^^^^^^^^
  File "/srv/venv/lib/python3.12/site-packages/django_kinetik/middleware.py", line 87, in call_action
    return definition.action(job)
  File "/srv/app/billing/tasks.py", line 50, in charge
    gateway.charge(job.data["amount"])
  File "/srv/app/billing/gateway.py", line 9, in charge
    raise PaymentError("card declined")
billing.gateway.PaymentError: card declined
"""


def test_a_traceback_starts_at_the_user_s_frame_and_the_raw_one_stays_on_the_page(staff):
    folded, count = fold_kinetik_frames(TRACEBACK)
    assert count == 2
    assert folded.splitlines()[:3] == [
        "Traceback (most recent call last):",
        "  [2 frames in django_kinetik folded]",
        '  File "/srv/app/billing/tasks.py", line 50, in charge',
    ]
    assert folded.endswith("billing.gateway.PaymentError: card declined\n")
    job = FinishedJobFactory(status=Status.FAILED, error="card declined")
    JobRunFactory(job=job, outcome="failed", error="card declined", traceback=TRACEBACK)
    html = staff.get(url("change", job.pk)).content.decode()
    shown = re.search(r'id="kinetik-traceback">(.*?)</pre>', html, re.S).group(1)
    assert "execution.py" not in shown and "billing/tasks.py" in shown
    raw = re.search(r'id="kinetik-raw-traceback">(.*?)</pre>', html, re.S).group(1)
    assert "django_kinetik/execution.py" in raw


def test_a_traceback_that_never_leaves_kinetik_or_chains_is_folded_only_where_it_helps():
    inside = 'Traceback (most recent call last):\n  File "/x/django_kinetik/a.py", line 1, in f\n    g()\nKeyError: 1\n'
    assert fold_kinetik_frames(inside) == (inside, 0)
    chained = TRACEBACK + "\nDuring handling of the above exception, another exception occurred:\n\n" + TRACEBACK
    folded, count = fold_kinetik_frames(chained)
    assert count == 4 and folded.count("[2 frames in django_kinetik folded]") == 2
