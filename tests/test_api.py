"""The JSON API: what a client of ``kinetik/api/`` sees, with each kind of credentials."""

import json
import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test import Client, RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

import django_kinetik as kinetik
from django_kinetik.api import urls as api_urls
from django_kinetik.api.body import MAX_BODY_BYTES
from django_kinetik.models import Job, JobLog, JobRun, Status
from tests.conftest import API_TOKEN, OTHER_API_TOKEN
from tests.factories import FinishedJobFactory, JobFactory, JobLogFactory, JobRunFactory, WorkerFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("api_tokens")]

API = "/kinetik/api/"


def user_with(*codenames, staff=True, enforce_csrf_checks=False):
    user = User.objects.create_user(f"user{User.objects.count()}", password="pw", is_staff=staff)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="django_kinetik", codename__in=codenames)
    )
    client = Client(enforce_csrf_checks=enforce_csrf_checks)
    client.force_login(user)
    return client


def post_json(client, url, body, **extra):
    return client.post(url, json.dumps(body), content_type="application/json", **extra)


def error_of(response):
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert list(body) == ["error"]
    return body["error"]


# -- reading ---------------------------------------------------------------------


def test_stats_counts_jobs_by_status_task_and_tag(api):
    JobFactory.create_batch(2)
    FinishedJobFactory(task="test.beta", tag="beta")
    response = api.get(f"{API}stats")
    assert response.status_code == 200
    assert response["Cache-Control"].startswith("max-age=0")
    stats = response.json()
    assert stats["total"] == 3
    assert stats["status"]["queued"] == 2 and stats["status"]["completed"] == 1 and stats["status"]["failed"] == 0
    assert stats["tasks"] == {"test.echo": {"queued": 2}, "test.beta": {"completed": 1}}
    assert stats["tags"] == {"alpha": {"queued": 2}, "beta": {"completed": 1}}


def test_a_job_is_shown_with_every_field(api):
    worker = WorkerFactory(name="web-1:42:abc")
    job = FinishedJobFactory(
        data={"to": "ada@example.com"},
        result={"receipt": "abc"},
        priority=10,
        worker=worker,
        progress_current=2,
        progress_total=4,
        progress_data={"row": 2},
        unique_key="mail-1",
    )
    response = api.get(f"{API}jobs/{job.pk}")
    assert response.status_code == 200
    shown = response.json()
    assert shown == {
        "id": job.pk,
        "task": "test.echo",
        "tag": "alpha",
        "priority": 10,
        "status": "completed",
        "data": {"to": "ada@example.com"},
        "result": {"receipt": "abc"},
        "error": "",
        "error_code": "",
        "waiting": None,
        "attempts": 1,
        "ghosts": 0,
        "snoozes": 0,
        "unique_key": "mail-1",
        "limit_key": None,
        "after": [],
        "options": {},
        "run_at": shown["run_at"],
        "created_at": shown["created_at"],
        "started_at": shown["started_at"],
        "finished_at": shown["finished_at"],
        "progress": {"current": 2.0, "total": 4.0, "data": {"row": 2}},
        "worker": "web-1:42:abc",
        "task_backend": "",
    }
    for field in ("run_at", "created_at", "started_at", "finished_at"):
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", shown[field]), shown[field]
    assert shown["finished_at"] == job.finished_at.isoformat().replace("+00:00", "Z")


def test_a_queued_job_has_no_times_or_worker_yet_and_a_purged_worker_is_no_error(api):
    queued = JobFactory()
    orphan = FinishedJobFactory(worker_id=987654)
    shown = api.get(f"{API}jobs/{queued.pk}").json()
    assert (shown["started_at"], shown["finished_at"], shown["worker"]) == (None, None, None)
    assert shown["progress"] == {"current": None, "total": None, "data": None}
    assert api.get(f"{API}jobs/{orphan.pk}").json()["worker"] is None


def test_unknown_jobs_and_urls_are_json_404s(api):
    assert "no job with id 999999" in error_of(api.get(f"{API}jobs/999999"))
    assert api.get(f"{API}jobs/{2**70}").status_code == 404
    for path in ("jobs/abc", "nothing/here", "jobs/1/explode"):
        response = api.get(API + path)
        assert response.status_code == 404
        assert "no API endpoint" in error_of(response)


def test_a_job_log_comes_oldest_first_a_page_at_a_time(api):
    job = FinishedJobFactory()
    lines = [JobLogFactory(job=job, message=f"step {n}", data={"n": n}) for n in range(5)]
    JobLogFactory(message="another job's line")
    first = api.get(f"{API}jobs/{job.pk}/log?limit=2").json()
    assert [line["message"] for line in first["logs"]] == ["step 0", "step 1"]
    assert first["logs"][0] == {
        "id": lines[0].pk,
        "attempt": 1,
        "created_at": lines[0].created_at.isoformat().replace("+00:00", "Z"),
        "message": "step 0",
        "data": {"n": 0},
    }
    seen = [line["id"] for line in first["logs"]]
    url = first["next"]
    while url:
        assert url.startswith("http://testserver/kinetik/api/jobs/")
        page = api.get(url).json()
        seen += [line["id"] for line in page["logs"]]
        url = page["next"]
    assert seen == [line.pk for line in lines]
    assert api.get(f"{API}jobs/{job.pk}/log").json()["next"] is None
    assert api.get(f"{API}jobs/999999/log").status_code == 404
    assert "limit must be" in error_of(api.get(f"{API}jobs/{job.pk}/log?limit=1001"))
    assert "Unknown parameter(s) 'order'" in error_of(api.get(f"{API}jobs/{job.pk}/log?order=-id"))


# -- listing ---------------------------------------------------------------------


def follow(client, url):
    """Every job id of every page from ``url`` on, and how many pages there were."""
    ids, pages = [], 0
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.content
        pages += 1
        ids += [job["id"] for job in response.json()["jobs"]]
        url = response.json()["next"]
    return ids, pages


def test_jobs_page_newest_first_without_duplicates_or_gaps(api):
    created = [job.pk for job in JobFactory.create_batch(25)]
    ids, pages = follow(api, f"{API}jobs?limit=10")
    assert ids == sorted(created, reverse=True)
    assert pages == 3


def test_jobs_page_oldest_first_with_order_id_and_keep_their_filters(api):
    created = [job.pk for job in JobFactory.create_batch(7, tag="beta", task="test.beta")]
    JobFactory.create_batch(3)
    ids, pages = follow(api, f"{API}jobs?order=id&limit=3&tag=beta")
    assert ids == created
    assert pages == 3


def test_a_page_boundary_on_the_last_job_ends_with_next_null(api):
    JobFactory.create_batch(4)
    first = api.get(f"{API}jobs?limit=2").json()
    second = api.get(first["next"]).json()
    assert len(second["jobs"]) == 2
    assert second["next"] is None


def test_jobs_created_while_paging_do_not_shift_the_pages(api):
    old = [job.pk for job in JobFactory.create_batch(4)]
    first = api.get(f"{API}jobs?limit=2").json()
    JobFactory.create_batch(5)
    ids, _ = follow(api, first["next"])
    assert [job["id"] for job in first["jobs"]] + ids == sorted(old, reverse=True)


def test_jobs_filter_by_status_task_and_tag(api):
    queued = JobFactory()
    failed = JobFactory(failed=True)
    beta = JobFactory(task="test.beta", tag="beta")
    mail = JobFactory(task="mail.send", tag="mail", completed=True)

    def ids(query):
        return [job["id"] for job in api.get(f"{API}jobs?{query}").json()["jobs"]]

    assert ids("status=failed") == [failed.pk]
    assert ids("status=queued") == [beta.pk, queued.pk]
    assert ids("task=mail.send") == [mail.pk]
    assert ids("tag=beta") == [beta.pk]
    assert ids("tag=alpha&status=queued") == [queued.pk]
    assert ids("tag=alpha&status=completed") == []
    assert ids("status=&tag=") == [mail.pk, beta.pk, failed.pk, queued.pk]


def test_a_page_is_one_query_with_no_count_and_no_offset(api):
    JobFactory.create_batch(5, worker=WorkerFactory())
    first = api.get(f"{API}jobs?limit=2").json()
    with CaptureQueriesContext(connection) as captured:
        assert api.get(first["next"]).status_code == 200
    sql = [query["sql"].upper() for query in captured if "KINETIK_JOB" in query["sql"].upper()]
    # The page, then the parents of the jobs on it (by their ids, through the arrows' index).
    assert len(sql) == 2
    assert "COUNT(" not in sql[0] and "OFFSET" not in sql[0]
    assert "KINETIK_JOBDEPENDENCY" in sql[1] and "CHILD_ID" in sql[1]


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("status=lost", "status 'lost' is not one of queued"),
        ("order=created_at", "order must be -id"),
        ("after=abc", "after must be an id"),
        ("after=-1", "after must be an id"),
        ("limit=0", "limit must be a whole number from 1 to 1000"),
        ("limit=1001", "limit must be a whole number from 1 to 1000"),
        ("limit=ten", "limit must be"),
        ("state=failed", "Unknown parameter(s) 'state'"),
    ],
)
def test_bad_list_parameters_are_400_saying_what_to_fix(api, query, says):
    response = api.get(f"{API}jobs?{query}")
    assert response.status_code == 400
    assert says in error_of(response)


# -- creating --------------------------------------------------------------------


def test_posting_a_job_creates_it_with_its_options(api):
    response = post_json(
        api,
        f"{API}jobs",
        {"task": "test.echo", "data": {"n": 1}, "priority": "high", "retries": 2, "timeout": "30s"},
    )
    assert response.status_code == 201
    shown = response.json()
    job = Job.objects.get(pk=shown["id"])
    assert (shown["task"], shown["tag"], shown["status"], shown["priority"]) == ("test.echo", "alpha", "queued", 10)
    assert job.data == {"n": 1} and job.options == {"retries": 2, "timeout": "30s"}
    assert shown["data"] == {"n": 1} and shown["options"] == job.options


def test_a_delay_or_a_run_at_makes_a_delayed_job(api):
    later = post_json(api, f"{API}jobs", {"task": "test.echo", "delay": "1h"}).json()
    assert later["status"] == "delayed"
    at = timezone.now() + timedelta(days=1)
    scheduled = post_json(api, f"{API}jobs", {"task": "test.echo", "run_at": at.isoformat()}).json()
    assert scheduled["status"] == "delayed"
    assert Job.objects.get(pk=scheduled["id"]).run_at == at


def test_a_task_this_process_lacks_is_queued_when_a_tag_is_given(api):
    response = post_json(api, f"{API}jobs", {"task": "reports.build", "tag": "reports"})
    assert response.status_code == 201
    assert Job.objects.get(pk=response.json()["id"]).tag == "reports"


def test_a_unique_key_returns_the_live_job_instead_of_a_second(api):
    first = post_json(api, f"{API}jobs", {"task": "test.echo", "unique_key": "nightly"}).json()
    second = post_json(api, f"{API}jobs", {"task": "test.echo", "unique_key": "nightly"}).json()
    assert first["id"] == second["id"]
    assert Job.objects.count() == 1


def test_a_list_creates_each_good_item_and_reports_each_bad_one_in_order(api):
    response = post_json(
        api,
        f"{API}jobs",
        [
            {"task": "test.echo", "data": {"n": 1}},
            {"task": "no.such.task"},
            {"task": "test.beta", "retries": -1},
            "not a job",
            {"task": "test.echo", "data": {"n": 2}},
        ],
    )
    assert response.status_code == 207
    items = response.json()
    assert len(items) == 5
    assert items[0]["data"] == {"n": 1} and items[4]["data"] == {"n": 2}
    assert items[1]["error"].startswith("item 1: No task named 'no.such.task'")
    assert "item 2:" in items[2]["error"] and "retries cannot be negative" in items[2]["error"]
    assert "item 3: a job must be a JSON object" in items[3]["error"]
    assert {key for item in items[1:4] for key in item} == {"error"}
    assert sorted(Job.objects.values_list("pk", flat=True)) == [items[0]["id"], items[4]["id"]]


def test_a_list_of_good_jobs_is_200_and_an_empty_list_creates_nothing(api):
    response = post_json(api, f"{API}jobs", [{"task": "test.echo"}, {"task": "test.gamma"}])
    assert response.status_code == 200
    assert [item["task"] for item in response.json()] == ["test.echo", "test.gamma"]
    empty = post_json(api, f"{API}jobs", [])
    assert (empty.status_code, empty.json()) == (200, [])
    assert Job.objects.count() == 2


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ('{"task": "test.echo",', "The body is not valid JSON"),
        ('{"task": "test.echo", "data": {"x": NaN}}', "NaN is not a JSON value"),
        ('"test.echo"', "Send a JSON object (one job) or a list of job objects."),
        ("42", "Send a JSON object"),
        ("", "The request has no body"),
        ('{"data": {}}', '"task" is required'),
        ('{"task": "no.such.task"}', "No task named 'no.such.task' is registered"),
        ('{"task": "test.echo", "data": [1, 2]}', "job data must be a JSON object"),
        ('{"task": "test.echo", "retries": "three"}', "retries must be an integer"),
        ('{"task": "test.echo", "delay": "soon"}', "delay 'soon' is not a duration"),
        ('{"task": "test.echo", "priority": "urgent"}', "priority 'urgent' is not a level"),
        ('{"task": "test.echo", "run_at": "tomorrow"}', '"run_at" must be an ISO-8601 time'),
        ('{"task": "test.echo", "delay": "1h", "run_at": "2030-01-01T00:00:00Z"}', "not both"),
        ('{"task": "test.echo", "retry_on": ["x.Error"]}', "unknown field(s) 'retry_on'"),
        ('{"task": "test.echo", "tag": "two words"}', "tag 'two words' is not valid"),
        (json.dumps({"task": "x" * 201, "tag": "t"}), "task is 201 characters long; the most is 200"),
    ],
)
def test_bad_job_requests_are_400_saying_what_to_fix(api, body, says):
    response = api.post(f"{API}jobs", body, content_type="application/json")
    assert response.status_code == 400, response.content
    assert says in error_of(response)
    assert not Job.objects.exists()


def test_a_body_over_the_limit_is_refused_before_it_is_parsed(api):
    items = [{"task": "test.echo", "data": {"pad": "x" * 1000}}] * (MAX_BODY_BYTES // 1000)
    response = post_json(api, f"{API}jobs", items)
    assert response.status_code == 413
    assert "larger than 1024 KiB" in error_of(response)
    assert not Job.objects.exists()


def test_a_body_without_a_length_is_still_held_to_the_limit():
    body = json.dumps({"task": "test.echo", "data": {"pad": "x" * MAX_BODY_BYTES}})
    request = RequestFactory().post(
        f"{API}jobs", body, content_type="application/json", headers={"Authorization": f"Bearer {API_TOKEN}"}
    )
    del request.META["CONTENT_LENGTH"]  # as a chunked upload arrives
    view = next(pattern for pattern in api_urls.urlpatterns if pattern.name == "api-jobs").callback
    response = view(request)
    assert response.status_code == 413
    assert "larger than" in json.loads(response.content)["error"]
    assert not Job.objects.exists()


# -- deleting, cancelling, retrying ------------------------------------------------


def test_delete_removes_the_job_with_its_log_and_runs(api):
    job = FinishedJobFactory()
    JobLogFactory(job=job)
    JobRunFactory(job=job)
    kept = FinishedJobFactory()
    JobLogFactory(job=kept)
    response = api.delete(f"{API}jobs/{job.pk}")
    assert response.status_code == 204
    assert list(Job.objects.values_list("pk", flat=True)) == [kept.pk]
    assert not JobRun.objects.filter(job_id=job.pk).exists()
    assert list(JobLog.objects.values_list("job_id", flat=True)) == [kept.pk]
    assert api.delete(f"{API}jobs/{job.pk}").status_code == 404


def test_a_running_job_cannot_be_deleted(api):
    job = JobFactory(active=True)
    response = api.delete(f"{API}jobs/{job.pk}")
    assert response.status_code == 409
    assert "is running; cancel it first" in error_of(response)
    assert Job.objects.filter(pk=job.pk).exists()


def test_cancel_and_retry(api):
    job = JobFactory()
    cancelled = api.post(f"{API}jobs/{job.pk}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled" and cancelled.json()["finished_at"]
    again = api.post(f"{API}jobs/{job.pk}/cancel")
    assert again.status_code == 409
    assert error_of(again) == f"Cannot cancel job {job.pk}: it is already cancelled."
    retried = api.post(f"{API}jobs/{job.pk}/retry")
    assert retried.status_code == 200
    assert (retried.json()["status"], retried.json()["finished_at"]) == ("queued", None)
    refused = api.post(f"{API}jobs/{job.pk}/retry")
    assert refused.status_code == 409
    assert "only failed or timeout or cancelled jobs can be retried" in error_of(refused)
    assert Job.objects.get(pk=job.pk).status == Status.QUEUED


def test_cancel_and_retry_of_an_unknown_job_are_404(api):
    for action in ("cancel", "retry"):
        response = api.post(f"{API}jobs/999999/{action}")
        assert response.status_code == 404
        assert "no job with id 999999" in error_of(response)


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("put", "jobs", "GET, POST"),
        ("delete", "jobs", "GET, POST"),
        ("post", "jobs/1", "GET, DELETE"),
        ("get", "jobs/1/cancel", "POST"),
        ("get", "jobs/1/retry", "POST"),
        ("post", "stats", "GET"),
        ("post", "", "GET"),
    ],
)
def test_other_methods_are_405_with_allow(api, method, path, allowed):
    response = getattr(api, method)(API + path)
    assert response.status_code == 405
    assert response["Allow"] == allowed
    assert "not allowed here" in error_of(response)


def test_head_answers_like_get_without_a_body(api):
    response = api.head(f"{API}stats")
    assert response.status_code == 200
    assert response.content == b""
    assert api.head(f"{API}jobs/1/cancel").status_code == 405


# -- who may call ----------------------------------------------------------------


def all_calls():
    """(method, path) of every API call and the metrics, for one job id."""
    return [
        ("get", ""),
        ("get", "stats"),
        ("get", "jobs"),
        ("post", "jobs"),
        ("get", "jobs/{id}"),
        ("delete", "jobs/{id}"),
        ("get", "jobs/{id}/log"),
        ("post", "jobs/{id}/cancel"),
        ("post", "jobs/{id}/retry"),
        ("get", "/kinetik/metrics"),
    ]


def call(client, method, path, job):
    url = path if path.startswith("/") else API + path.format(id=job.pk)
    if method == "post" and path == "jobs":
        return post_json(client, url, {"task": "test.echo"})
    return getattr(client, method)(url)


@pytest.mark.parametrize(("method", "path"), all_calls())
def test_without_credentials_every_call_is_401_and_shows_nothing(client, method, path):
    job = FinishedJobFactory(data={"secret": "s3cr3t"})
    response = call(client, method, path, job)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="kinetik"'
    assert "Authorization: Bearer" in error_of(response)
    assert b"s3cr3t" not in response.content
    assert Job.objects.count() == 1 and Job.objects.get().status == Status.COMPLETED


@pytest.mark.parametrize("token", ["w" * 40, API_TOKEN[:-1], API_TOKEN + "k", ""])
def test_a_wrong_token_is_401_even_with_a_staff_session(admin_client, token):
    admin_client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    response = admin_client.get(f"{API}jobs")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="kinetik", error="invalid_token"'
    assert "not one of KINETIK['API_TOKENS']" in error_of(response)


def test_with_no_tokens_configured_no_token_is_accepted(settings):
    settings.KINETIK = {**settings.KINETIK, "API_TOKENS": []}
    response = Client(headers={"Authorization": f"Bearer {API_TOKEN}"}).get(f"{API}stats")
    assert response.status_code == 401


def test_every_configured_token_works_and_any_scheme_case(settings):
    for header in (f"Bearer {API_TOKEN}", f"bearer {OTHER_API_TOKEN}", f"BEARER   {API_TOKEN}  "):
        assert Client(headers={"Authorization": header}).get(f"{API}stats").status_code == 200


@pytest.mark.parametrize(("method", "path"), all_calls())
def test_a_token_may_do_everything(api, method, path):
    pytest.importorskip("prometheus_client")
    job = FinishedJobFactory(failed=True) if path.endswith("retry") else JobFactory()
    response = call(api, method, path, job)
    assert response.status_code in (200, 201, 204), response.content


@pytest.mark.parametrize(("method", "path"), all_calls())
def test_a_user_who_is_not_staff_is_403_even_with_permissions(method, path):
    client = user_with("view_job", "add_job", "delete_job", "cancel_job", "retry_job", staff=False)
    job = JobFactory(data={"secret": "s3cr3t"})
    response = call(client, method, path, job)
    assert response.status_code == 403
    assert "staff account" in error_of(response)
    assert b"s3cr3t" not in response.content


@pytest.mark.parametrize(
    ("method", "path", "permission"),
    [
        ("get", "", "view_job"),
        ("get", "stats", "view_job"),
        ("get", "jobs", "view_job"),
        ("get", "jobs/{id}", "view_job"),
        ("get", "jobs/{id}/log", "view_job"),
        ("get", "/kinetik/metrics", "view_job"),
        ("post", "jobs", "add_job"),
        ("delete", "jobs/{id}", "delete_job"),
        ("post", "jobs/{id}/cancel", "cancel_job"),
        ("post", "jobs/{id}/retry", "retry_job"),
    ],
)
def test_staff_need_the_permission_of_what_they_do(method, path, permission):
    pytest.importorskip("prometheus_client")
    everything_else = {"view_job", "add_job", "delete_job", "cancel_job", "retry_job"} - {permission}
    job = JobFactory() if path.endswith("cancel") else FinishedJobFactory(failed=True)
    refused = call(user_with(*everything_else), method, path, job)
    assert refused.status_code == 403
    assert f"django_kinetik.{permission} permission" in error_of(refused)
    allowed = call(user_with(permission), method, path, job)
    assert allowed.status_code in (200, 201, 204), allowed.content


def test_a_superuser_session_may_do_everything(admin_client):
    job = FinishedJobFactory(failed=True)
    assert admin_client.get(f"{API}jobs/{job.pk}").status_code == 200
    assert admin_client.post(f"{API}jobs/{job.pk}/retry").json()["status"] == "queued"


def test_a_session_must_pass_the_csrf_check_to_change_anything():
    client = user_with("add_job", "delete_job", "cancel_job", enforce_csrf_checks=True)
    job = JobFactory()
    for response in (
        post_json(client, f"{API}jobs", {"task": "test.echo"}),
        client.delete(f"{API}jobs/{job.pk}"),
        client.post(f"{API}jobs/{job.pk}/cancel"),
    ):
        assert response.status_code == 403
        assert error_of(response).startswith("CSRF check failed: CSRF cookie not set.")
    assert list(Job.objects.values_list("pk", "status")) == [(job.pk, "queued")]

    secret = "c" * 32
    client.cookies["csrftoken"] = secret
    created = post_json(client, f"{API}jobs", {"task": "test.echo"}, headers={"X-CSRFToken": secret})
    assert created.status_code == 201
    wrong = client.post(f"{API}jobs/{job.pk}/cancel", headers={"X-CSRFToken": "d" * 32})
    assert wrong.status_code == 403 and "HTTP header incorrect" in error_of(wrong)
    assert client.post(f"{API}jobs/{job.pk}/cancel", headers={"X-CSRFToken": secret}).status_code == 200
    assert client.delete(f"{API}jobs/{job.pk}", headers={"X-CSRFToken": secret}).status_code == 204


def test_a_session_reads_without_a_csrf_token():
    client = user_with("view_job", enforce_csrf_checks=True)
    assert client.get(f"{API}jobs").status_code == 200


def test_a_token_needs_no_csrf_token():
    client = Client(enforce_csrf_checks=True, headers={"Authorization": f"Bearer {API_TOKEN}"})
    job = JobFactory()
    assert post_json(client, f"{API}jobs", {"task": "test.echo"}).status_code == 201
    assert client.post(f"{API}jobs/{job.pk}/cancel").status_code == 200
    assert client.delete(f"{API}jobs/{job.pk}").status_code == 204


def test_the_live_feed_stays_staff_only(client):
    response = client.get(reverse("kinetik:events"))
    assert response.status_code == 302
    assert "/login/" in response["Location"]


# -- the OpenAPI document ----------------------------------------------------------


def openapi_path(route):
    return "/api/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route)


def refs(value):
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "$ref":
                yield item
            else:
                yield from refs(item)
    elif isinstance(value, list):
        for item in value:
            yield from refs(item)


def test_the_api_root_is_an_openapi_document_of_every_route(api):
    response = api.get(API)
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.1.")
    assert document["info"]["title"] and document["info"]["version"]
    assert document["servers"] == [{"url": "http://testserver/kinetik"}]
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {**schemes["bearerAuth"], "type": "http", "scheme": "bearer"}
    assert schemes["sessionAuth"]["in"] == "cookie"
    assert document["security"] == [{"bearerAuth": []}, {"sessionAuth": []}]

    routes = {
        openapi_path(str(pattern.pattern)): pattern.callback
        for pattern in api_urls.urlpatterns
        if pattern.name != "api-not-found"
    }
    assert set(routes) | {"/metrics"} == set(document["paths"])
    for path, view in routes.items():
        operations = {key for key in document["paths"][path] if key != "parameters"}
        assert operations == {method.lower() for method in view.methods}, path
        for name in re.findall(r"{(\w+)}", path):
            parameters = document["paths"][path]["parameters"]
            assert any(parameter["$ref"].endswith("/JobId") for parameter in parameters)
            assert document["components"]["parameters"]["JobId"]["name"] == name
    operation_ids = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            assert operation["responses"], (path, method)
            assert {"401", "403"} <= set(operation["responses"]), (path, method)
            operation_ids.append(operation["operationId"])
    assert len(operation_ids) == len(set(operation_ids))
    for ref in set(refs(document)):
        kind, name = ref.removeprefix("#/components/").split("/")
        assert name in document["components"][kind], ref


def test_the_openapi_document_knows_every_field_a_job_request_may_have(api):
    from django_kinetik.api.enqueue import known_fields

    document = api.get(API).json()
    assert set(document["components"]["schemas"]["NewJob"]["properties"]) == set(known_fields())
    job_fields = set(document["components"]["schemas"]["Job"]["properties"])
    assert job_fields == set(api.get(f"{API}jobs/{JobFactory().pk}").json())


@pytest.mark.django_db(transaction=True)
def test_a_job_created_through_the_api_runs(api, run_worker):
    created = post_json(api, f"{API}jobs", {"task": "test.echo", "data": {"hello": "api"}}).json()
    run_worker("alpha")
    shown = api.get(f"{API}jobs/{created['id']}").json()
    assert shown["status"] == "completed"
    assert shown["result"] == {"echo": {"hello": "api"}, "attempt": 1}
    assert kinetik.get_job(created["id"]).status == Status.COMPLETED
