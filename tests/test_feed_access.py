"""Who may read the live event feed: exactly who may read jobs through the API.

The feed streams job data, log lines, progress data and errors, so it asks
for what the API's reads ask for: a bearer token from ``KINETIK["API_TOKENS"]``,
or a staff session with the ``django_kinetik.view_job`` permission.
"""

import json
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse

import django_kinetik as kinetik
from django_kinetik.backends import get_backend
from django_kinetik.feed import sse
from tests.conftest import API_TOKEN

FEED = "kinetik:events"

pytestmark = pytest.mark.usefixtures("api_tokens")


@pytest.fixture
def live_feed(request, monkeypatch):
    """A feed to follow: PostgreSQL's NOTIFY where it LISTENs, Redis elsewhere (skipped without it)."""
    if not get_backend().supports_notify:
        request.getfixturevalue("redis_fastpath")
    monkeypatch.setattr(sse, "HEARTBEAT", 0.1)
    monkeypatch.setattr(sse, "LIFETIME", 20.0)


def logged_in(*codenames, staff=True):
    user = User.objects.create_user(f"user{User.objects.count()}", password="pw", is_staff=staff)
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    client = Client()
    client.force_login(user)
    return client


def first_created_event(response):
    """Create a job once the stream listens; return the event that announces it."""
    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream"
    chunks = iter(response.streaming_content)
    assert next(chunks).startswith(b"retry: ")  # listening from here on
    job = kinetik.create("test.echo", {"secret": "s3cret"})
    try:
        for chunk in chunks:
            if chunk.startswith(b"data: "):
                return job, json.loads(chunk[len(b"data: ") :])
    finally:
        response.close()
    raise AssertionError("the stream ended without an event")


@pytest.mark.django_db(transaction=True)
def test_a_bearer_token_from_api_tokens_reads_the_feed(live_feed):
    client = Client(headers={"Authorization": f"Bearer {API_TOKEN}"})
    job, event = first_created_event(client.get(reverse(FEED), {"kind": "created"}))
    assert (event["kind"], event["job_id"]) == ("created", job.pk)


@pytest.mark.django_db(transaction=True)
def test_staff_with_the_view_job_permission_reads_the_feed(live_feed):
    job, event = first_created_event(logged_in("view_job").get(reverse(FEED), {"kind": "created"}))
    assert (event["kind"], event["job_id"]) == ("created", job.pk)


@pytest.mark.django_db
@pytest.mark.parametrize("codenames", [(), ("change_job",), ("view_worker", "view_tagstate")])
def test_staff_whom_the_api_refuses_are_refused_by_the_feed(codenames):
    client = logged_in(*codenames)
    assert client.get(reverse("kinetik:api-jobs")).status_code == 403
    assert client.get(reverse(FEED)).status_code == 403
    assert client.get(reverse(FEED), {"job": "1"}).status_code == 403


@pytest.mark.django_db
def test_a_user_who_is_not_staff_is_refused_even_with_the_permission():
    assert logged_in("view_job", staff=False).get(reverse(FEED)).status_code == 403


@pytest.mark.django_db
def test_a_script_asking_for_json_gets_the_api_s_errors_not_a_page():
    viewer = logged_in()
    refused = viewer.get(reverse(FEED), headers={"Accept": "application/json"})
    assert refused.status_code == 403
    assert "view_job" in refused.json()["error"]
    anonymous = Client().get(reverse(FEED), headers={"Accept": "application/json"})
    assert anonymous.status_code == 401
    assert "Bearer" in anonymous["WWW-Authenticate"]
    assert "API_TOKENS" in anonymous.json()["error"]


@pytest.mark.django_db
@pytest.mark.parametrize("header", [f"Bearer {API_TOKEN}x", "Bearer ", f"bearer {'w' * 40}"])
def test_a_wrong_bearer_token_gets_401_json_even_with_a_staff_session(admin_client, header):
    response = admin_client.get(reverse(FEED), headers={"Authorization": header})
    assert response.status_code == 401
    assert 'error="invalid_token"' in response["WWW-Authenticate"]
    assert "not one of KINETIK['API_TOKENS']" in response.json()["error"]


@pytest.mark.django_db
def test_an_anonymous_browser_is_sent_to_the_admin_s_login_page_and_back():
    client = Client()
    response = client.get(reverse(FEED), {"job": "7", "kind": "log"})
    assert response.status_code == 302
    location = urlsplit(response["Location"])
    assert location.path == reverse("admin:login")
    assert parse_qs(location.query)["next"] == [f"{reverse(FEED)}?job=7&kind=log"]
    # The page exists (Django's default /accounts/login/ is a 404 in a fresh project).
    assert client.get(response["Location"]).status_code == 200


@pytest.mark.django_db
def test_refused_callers_learn_nothing_from_the_filters():
    # The credentials are checked first: a bad filter does not tell a stranger how the feed works.
    for client, status in ((Client(headers={"Accept": "application/json"}), 401), (logged_in(), 403)):
        assert client.get(reverse(FEED), {"kind": "exploded"}).status_code == status


@pytest.mark.django_db
def test_the_job_page_stream_keeps_the_admin_s_rules(live_feed):
    job = kinetik.create("test.echo")
    stream = reverse("admin:django_kinetik_job_events", args=[job.pk])
    # The admin's views are for sessions: a token is not a login there.
    token = Client(headers={"Authorization": f"Bearer {API_TOKEN}"}).get(stream)
    assert token.status_code == 302 and token["Location"].startswith(reverse("admin:login"))
    assert logged_in().get(stream).status_code == 403  # staff who cannot view the job in the admin
    allowed = logged_in("view_job").get(stream)
    assert (allowed.status_code, allowed["Content-Type"]) == (200, "text/event-stream")
    allowed.close()  # never iterated, so never listening
