"""The admin as the job UI: list, filters, actions, detail, live view, dashboard, security."""

import json
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

import django_kinetik as kinetik
from django_kinetik import bulk
from django_kinetik.models import Job, JobLog, Status
from tests.factories import FinishedJobFactory, JobFactory, JobLogFactory, JobRunFactory, WorkerFactory

pytestmark = pytest.mark.django_db

LIST = "admin:django_kinetik_job_changelist"
XSS = "<script>alert('kinetik')</script>"


def url(name, *args):
    return reverse(f"admin:django_kinetik_job_{name}", args=args)


def rows(response):
    return list(response.context["cl"].result_list)


def action_names(client):
    form = client.get(reverse(LIST)).context["action_form"]
    return [] if form is None else [name for name, _ in form.fields["action"].choices if name]


def user_with(*codenames, staff=True):
    user = User.objects.create_user(f"user{User.objects.count()}", password="pw", is_staff=staff)
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    client = Client()
    client.force_login(user)
    return client


# -- the list -------------------------------------------------------------------


def test_the_list_shows_every_column_newest_first(staff):
    worker = WorkerFactory(name="web-1:42:abc", host="web-1", pid=42)
    older = FinishedJobFactory(task="report.build", worker=worker)
    running = JobFactory(task="report.build", status=Status.ACTIVE, progress_current=5, progress_total=10, attempts=3)
    newer = JobFactory(task="mail.send", tag="mail")
    page = staff.get(reverse(LIST))
    assert page.status_code == 200
    assert [job.pk for job in rows(page)] == [newer.pk, running.pk, older.pk]
    html = page.content.decode()
    headers = [str(header["text"]) for header in page.context["result_headers"]][1:]  # after the checkbox
    assert headers == ["ID", "task", "tag", "status", "created", "took", "worker"]
    for text in (
        "report.build",
        "mail.send",
        'title="web-1:42:abc">web-1:42<',  # the worker compact, its whole name on hover
        'class="kinetik-badge kinetik-completed"',
        '<span title="5 of 10">50%</span>',  # a running job's progress beside its status
        '<span class="kinetik-muted" title="3 attempts">&times;3</span>',  # and its attempts, when more than one
        "Dashboard",
    ):
        assert text in html


def test_the_list_costs_the_same_queries_for_5_or_50_jobs(staff):
    def queries_for_list():
        with CaptureQueriesContext(connection) as captured:
            assert staff.get(reverse(LIST)).status_code == 200
        return len(captured)

    worker = WorkerFactory()
    JobFactory.create_batch(5, worker=worker)
    few = queries_for_list()
    FinishedJobFactory.create_batch(45, worker=worker, progress_current=1, progress_total=2)
    assert queries_for_list() == few


def test_filters_by_status_tag_task_and_created_date(staff):
    failed = FinishedJobFactory(status=Status.FAILED, tag="alpha", task="test.fail")
    queued = JobFactory(tag="beta", task="test.beta")
    old = JobFactory(created_at=timezone.now() - timedelta(days=40))
    for query, expected in (
        ({"status__exact": "failed"}, [failed]),
        ({"tag": "beta"}, [queued]),
        ({"task": "test.fail"}, [failed]),
        ({"created_at__gte": str(timezone.now() - timedelta(days=7))}, [queued, failed]),
        ({"created_at__year": str(old.created_at.year), "created_at__month": str(old.created_at.month)}, [old]),
    ):
        page = staff.get(reverse(LIST), query)
        assert page.status_code == 200, query
        assert rows(page) == expected, query


def test_a_filtered_list_is_newest_first_and_a_sort_by_column_still_applies(staff):
    # On PostgreSQL the filtered page is ordered by (filter column, -id) to read its index:
    # the same order a user sees, newest first, with sorting by a column left alone.
    failed = [FinishedJobFactory(status=Status.FAILED, tag="alpha", task=f"test.t{n}") for n in range(3)]
    FinishedJobFactory.create_batch(5, tag="beta")  # newer, other tag and status
    live = JobFactory(tag="alpha")
    assert rows(staff.get(reverse(LIST), {"status__exact": "failed"})) == failed[::-1]
    assert rows(staff.get(reverse(LIST), {"tag": "alpha"})) == [live, *failed[::-1]]
    assert rows(staff.get(reverse(LIST), {"tag": "alpha", "status__exact": "failed"})) == failed[::-1]
    assert rows(staff.get(reverse(LIST), {"status__exact": "queued"})) == [live]
    by_task = staff.get(reverse(LIST), {"tag": "alpha", "status__exact": "failed", "o": "1"})  # the task column
    assert rows(by_task) == failed


def test_search_by_id_task_name_and_text_in_the_data(staff):
    invoice = JobFactory(task="billing.invoice", data={"customer": "ACME Widgets"})
    other = JobFactory(task="mail.send", data={"to": "ada@example.com"})
    assert rows(staff.get(reverse(LIST), {"q": str(other.pk)})) == [other]
    assert rows(staff.get(reverse(LIST), {"q": f"#{invoice.pk}"})) == [invoice]
    assert rows(staff.get(reverse(LIST), {"q": "invoice"})) == [invoice]
    assert rows(staff.get(reverse(LIST), {"q": "acme widgets"})) == [invoice]


def test_the_date_drill_down_offers_the_years_between_oldest_and_newest(staff):
    JobFactory(created_at=timezone.now().replace(year=2024, month=6))
    JobFactory()
    html = staff.get(reverse(LIST)).content.decode()
    for year in range(2024, timezone.now().year + 1):
        assert f"created_at__year={year}" in html


def test_large_counts_are_estimated_not_counted_on_postgresql(staff):
    kinetik.create_many("test.echo", [{} for _ in range(12_000)])
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("ANALYZE django_kinetik_job")
    with CaptureQueriesContext(connection) as captured:
        page = staff.get(reverse(LIST))
    counts = [q["sql"] for q in captured if "COUNT(" in q["sql"].upper() and "django_kinetik_job" in q["sql"]]
    if connection.vendor == "postgresql":
        assert counts == []
        assert abs(page.context["cl"].result_count - 12_000) < 1_200  # the planner's estimate
    else:
        assert page.context["cl"].result_count == 12_000


# -- actions ----------------------------------------------------------------------


def post_action(client, action, pks=(), confirmed=False, select_across=False, query=""):
    data = {"action": action, "index": 0, "_selected_action": [str(pk) for pk in pks]}
    if select_across:
        data["select_across"] = "1"
    if confirmed:
        data["confirmed"] = "yes"
    return client.post(reverse(LIST) + query, data, follow=True)


def test_each_action_asks_for_confirmation_first(staff):
    queued = JobFactory()
    done = FinishedJobFactory()
    page = post_action(staff, "cancel_jobs", [queued.pk, done.pk])
    html = page.content.decode()
    assert "Cancel jobs" in html and "Yes, cancel 1 job" in html and "1</strong> will be skipped" in html
    queued.refresh_from_db()
    assert queued.status == Status.QUEUED  # nothing happened yet


def test_cancel_and_retry_say_how_many_changed_and_how_many_were_skipped(staff):
    queued = JobFactory()
    done = FinishedJobFactory()
    page = post_action(staff, "cancel_jobs", [queued.pk, done.pk], confirmed=True)
    assert "1 job cancelled. 1 job skipped: in a state where that makes no sense." in page.content.decode()
    queued.refresh_from_db()
    assert queued.status == Status.CANCELLED
    page = post_action(staff, "retry_jobs", [queued.pk, done.pk], confirmed=True)
    assert "1 job queued again. 1 job skipped" in page.content.decode()
    queued.refresh_from_db()
    assert (queued.status, queued.attempts) == (Status.QUEUED, 0)


def test_run_now_queues_delayed_jobs(staff):
    delayed = JobFactory(status=Status.DELAYED, run_at=timezone.now() + timedelta(days=1))
    post_action(staff, "run_jobs_now", [delayed.pk], confirmed=True)
    delayed.refresh_from_db()
    assert delayed.status == Status.QUEUED and delayed.run_at <= timezone.now()


def test_delete_removes_jobs_with_their_logs_but_never_a_running_one(staff):
    done = FinishedJobFactory()
    JobLogFactory(job=done)
    running = JobFactory(status=Status.ACTIVE)
    page = post_action(staff, "delete_selected", [done.pk, running.pk], confirmed=True)
    assert "1 job deleted. 1 job skipped" in page.content.decode()
    assert list(Job.objects.values_list("pk", flat=True)) == [running.pk]
    assert not JobLog.objects.exists()


def test_an_action_can_apply_to_every_job_matching_the_filter(staff):
    kinetik.create_many("test.echo", [{} for _ in range(120)], tag="mail")
    others = kinetik.create_many("test.echo", [{} for _ in range(10)], tag="other")
    on_page = [job.pk for job in rows(staff.get(reverse(LIST), {"tag": "mail"}))]
    assert len(on_page) == 50  # one page; "select all 120" reaches the rest
    page = post_action(staff, "cancel_jobs", on_page, select_across=True, query="?tag=mail")
    assert "Yes, cancel 120 jobs" in page.content.decode()
    page = post_action(staff, "cancel_jobs", on_page, select_across=True, confirmed=True, query="?tag=mail")
    assert "120 jobs cancelled." in page.content.decode()
    assert Job.objects.filter(tag="mail", status=Status.CANCELLED).count() == 120
    assert Job.objects.filter(pk__in=[j.pk for j in others], status=Status.QUEUED).count() == 10


def test_bulk_operations_work_in_batches_and_count_skips(received):
    jobs = kinetik.create_many("test.echo", [{} for _ in range(30)])
    Job.objects.filter(pk__in=[j.pk for j in jobs[:4]]).update(status=Status.COMPLETED)
    result = bulk.cancel_all(Job.objects.all(), batch_size=7)
    assert (result.changed, result.skipped) == (26, 4)
    assert sum(1 for name, _ in received if name == "job_cancelled") == 26


# -- one job ------------------------------------------------------------------------


def test_detail_shows_data_result_error_traceback_attempts_and_logs(staff):
    job = FinishedJobFactory(
        status=Status.FAILED,
        data={"to": "ada@example.com", "items": [1, 2]},
        result=None,
        error="card declined",
        error_code="E_CARD",
        attempts=2,
        progress_current=1,
        progress_total=4,
    )
    JobRunFactory(job=job, attempt=1, outcome="failed", error="timeout talking to bank", traceback="Traceback: first")
    JobRunFactory(
        job=job,
        attempt=2,
        outcome="failed",
        error="card declined",
        exception="payments.errors.CardDeclined",
        traceback="Traceback: second",
    )
    for n in range(60):
        JobLogFactory(job=job, message=f"line {n}", data={"n": n} if n == 59 else None)
    html = staff.get(url("change", job.pk)).content.decode()
    assert "&quot;to&quot;: &quot;ada@example.com&quot;" in html  # pretty-printed JSON, escaped
    assert "card declined" in html and "[E_CARD]" in html and "Traceback: second" in html
    assert "payments.errors.CardDeclined" in html  # the exception class of the last attempt
    assert "timeout talking to bank" in html  # the attempt history
    assert "line 59" in html and "line 0<" not in html  # the last page of the log first
    assert "&quot;n&quot;: 59" in html
    assert 'value="25"' in html  # the progress bar
    first_page = staff.get(url("change", job.pk), {"logs_page": 1}).content.decode()
    assert "line 0<" in first_page and "line 59" not in first_page


def test_detail_buttons_cancel_and_retry(staff):
    job = JobFactory()
    html = staff.get(url("change", job.pk)).content.decode()
    assert 'value="Cancel job"' in html and 'value="Retry job"' not in html
    staff.post(url("cancel", job.pk))
    job.refresh_from_db()
    assert job.status == Status.CANCELLED
    html = staff.get(url("change", job.pk)).content.decode()
    assert 'value="Retry job"' in html
    staff.post(url("retry", job.pk))
    job.refresh_from_db()
    assert job.status == Status.QUEUED


def test_edit_and_retry_corrects_the_data_and_keeps_the_history(staff):
    job = FinishedJobFactory(status=Status.FAILED, data={"to": "typo@exmaple.com"}, error="bounced", attempts=1)
    JobRunFactory(job=job, outcome="failed", error="bounced")
    response = staff.post(url("edit_retry", job.pk), {"data": '{"to": "ada@example.com"}'}, follow=True)
    assert "queued again with the corrected data" in response.content.decode()
    job.refresh_from_db()
    assert (job.status, job.data, job.error, job.attempts) == (Status.QUEUED, {"to": "ada@example.com"}, "", 0)
    assert job.runs.count() == 1


@pytest.mark.parametrize(("text", "message"), [("{not json", "Not valid JSON"), ("[1, 2]", "must be a JSON object")])
def test_edit_and_retry_refuses_bad_data_and_changes_nothing(staff, text, message):
    job = FinishedJobFactory(status=Status.FAILED, data={"to": "x"})
    page = staff.post(url("edit_retry", job.pk), {"data": text})
    assert message in page.content.decode()
    assert text.replace('"', "&quot;") in page.content.decode() or text in page.content.decode()
    job.refresh_from_db()
    assert (job.status, job.data) == (Status.FAILED, {"to": "x"})


def test_the_live_view_reports_status_progress_and_new_log_lines(staff):
    job = JobFactory(status=Status.ACTIVE, attempts=1, progress_current=2, progress_total=8)
    first = JobLogFactory(job=job, message="one")
    JobLogFactory(job=job, message="two", data={"k": 1})
    state = staff.get(url("live", job.pk), {"after": first.pk}).json()
    assert state["status"] == "active" and state["live"] is True
    assert state["progress"] == {"current": 2.0, "total": 8.0, "percent": 25.0}
    assert [(line["message"], line["data"]) for line in state["logs"]] == [("two", {"k": 1})]


# -- dashboard -----------------------------------------------------------------------


def test_the_dashboard_shows_counts_workers_and_a_chart(staff):
    live = WorkerFactory(host="worker-host-1", state="online", last_heartbeat=timezone.now())
    WorkerFactory(host="long-gone", state="offline")
    JobFactory.create_batch(2, task="mail.send", tag="mail")
    FinishedJobFactory(task="mail.send", tag="mail", finished_at=timezone.now() - timedelta(minutes=3))
    FinishedJobFactory(task="report.build", tag="reports", status=Status.FAILED)
    page = staff.get(url("dashboard"))
    html = page.content.decode()
    assert page.status_code == 200
    assert "worker-host-1" in html and "long-gone" not in html and str(live.pid) in html
    assert '<svg class="kinetik-chart"' in html
    assert html.count('class="kinetik-bar-completed"') == 1 and html.count('class="kinetik-bar-failed"') == 1
    assert "1 completed" in html and "1 failed or timed out" in html
    by_task = {name: counts for name, counts, total in page.context["by_task"]}
    assert by_task["mail.send"][0] == 2  # queued
    assert "?task=mail.send" in html and "?tag=reports" in html
    assert 'src="http' not in html and 'href="http' not in html  # nothing from a CDN


def test_the_app_index_links_the_dashboard(staff):
    html = staff.get(reverse("admin:app_list", args=["django_kinetik"])).content.decode()
    assert url("dashboard") in html


# -- security --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["changelist", "dashboard", "change", "live", "cancel", "retry", "edit_retry"])
def test_every_view_requires_a_staff_login(client, name):
    job = JobFactory()
    target = reverse(LIST) if name == "changelist" else url(name) if name == "dashboard" else url(name, job.pk)
    for visitor in (client, user_with("view_job", "change_job", "cancel_job", "retry_job", staff=False)):
        response = visitor.post(target) if name in ("cancel", "retry", "edit_retry") else visitor.get(target)
        assert response.status_code == 302 and "/login/" in response["Location"], (name, response.status_code)


def test_view_permission_alone_sees_but_cannot_act():
    viewer = user_with("view_job")
    job = FinishedJobFactory(status=Status.FAILED)
    assert viewer.get(reverse(LIST)).status_code == 200
    assert action_names(viewer) == []
    html = viewer.get(url("change", job.pk)).content.decode()
    assert "Retry job" not in html and "Edit and retry" not in html
    assert viewer.post(url("retry", job.pk)).status_code == 403
    assert viewer.post(url("edit_retry", job.pk), {"data": "{}"}).status_code == 403
    job.refresh_from_db()
    assert job.status == Status.FAILED


def test_cancel_and_retry_have_their_own_permissions():
    canceller = user_with("view_job", "cancel_job")
    job = JobFactory()
    assert action_names(canceller) == ["cancel_jobs"]
    assert canceller.post(url("cancel", job.pk)).status_code == 302
    job.refresh_from_db()
    assert job.status == Status.CANCELLED
    assert canceller.post(url("retry", job.pk)).status_code == 403
    assert user_with().get(reverse(LIST)).status_code == 403  # staff without any job permission


def test_without_view_permission_the_live_view_and_dashboard_are_refused():
    nobody = user_with()
    job = JobFactory()
    assert nobody.get(url("live", job.pk)).status_code == 403
    assert nobody.get(url("dashboard")).status_code == 403


def test_html_in_data_results_errors_and_logs_is_escaped_everywhere(staff):
    job = FinishedJobFactory(
        task="xss.task",
        status=Status.FAILED,
        data={"html": XSS, XSS: 1},
        result={"r": XSS},
        error=XSS,
        error_code="<b>",
        tag="alpha",
    )
    JobRunFactory(job=job, outcome="failed", error=XSS, traceback=XSS)
    JobLogFactory(job=job, message=XSS, data={"m": XSS})
    WorkerFactory(host=XSS, state="online", tags=[XSS])
    pages = [
        staff.get(reverse(LIST)),
        staff.get(reverse(LIST), {"q": XSS}),
        staff.get(url("change", job.pk)),
        staff.get(url("dashboard")),
        post_action(staff, "retry_jobs", [job.pk]),
        staff.post(url("edit_retry", job.pk), {"data": XSS}),
    ]
    for page in pages:
        assert page.status_code == 200
        assert "<script>alert(" not in page.content.decode()
    live = staff.get(url("live", job.pk))
    assert live["Content-Type"] == "application/json"
    assert json.loads(live.content)["logs"][0]["message"] == XSS  # data, not markup: the page inserts it as text


def test_csrf_protects_every_action():
    client = Client(enforce_csrf_checks=True)
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    job = JobFactory()
    assert client.post(url("cancel", job.pk)).status_code == 403
    assert client.post(url("edit_retry", job.pk), {"data": "{}"}).status_code == 403
    response = client.post(reverse(LIST), {"action": "cancel_jobs", "_selected_action": [job.pk], "confirmed": "yes"})
    assert response.status_code == 403
    job.refresh_from_db()
    assert job.status == Status.QUEUED
