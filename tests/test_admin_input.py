"""The admin under hostile input: no URL, query string or form a user can type gets a 500.

First an HTTP fuzz over every admin URL of django_kinetik: each list with
hostile values for each of its parameters (its filters read from the page
itself), each object URL with ids that are not ids. Then what a user sees:
a 404 for a bad id, Django's invalid-lookup redirect (``?e=1``) for a bad
filter, text search for what cannot be an id, and edit-and-retry refusing
data no database stores unchanged, with nothing written.
"""

import re
from urllib.parse import urlsplit

import pytest
from django.contrib.admin.views.main import (
    ALL_VAR,
    ERROR_FLAG,
    IS_POPUP_VAR,
    ORDER_VAR,
    PAGE_VAR,
    SEARCH_VAR,
    TO_FIELD_VAR,
)
from django.db import transaction
from django.urls import reverse
from django.utils.html import escape

from django_kinetik.models import Job, JobRun, Status, TagState, Worker
from django_kinetik.values.jsondata import MAX_DEPTH
from tests.factories import FinishedJobFactory, JobFactory, JobLogFactory, JobRunFactory, WorkerFactory

pytestmark = pytest.mark.django_db

#: what a user can type into a query string, percent-encoded as a browser sends it
HOSTILE = {
    "NUL": "%00",
    "NUL inside": "a%00b",
    "past bigint": "99999999999999999999",
    "below bigint": "-99999999999999999999",
    "negative": "-1",
    "zero": "0",
    "superscript two": "%C2%B2",
    "Arabic-Indic three": "%D9%A3",
    "lone surrogate": "%ED%A0%80",
    "invalid UTF-8": "%FF%FE",
    "10,000 characters": "x" * 10_000,
    "10,000 non-ASCII": "%C3%A9" * 10_000,
    "empty": "",
    "word": "abc",
    "slash": "1/2",
    "regex": "%28%5B",
    "LIKE wildcards": "%25_%5C",
    "year past the calendar": "9999",
    "impossible date": "2024-13-45",
    "float": "1e308",
}
#: what Django's lists read besides their filters
LIST_PARAMS = [
    SEARCH_VAR,
    ORDER_VAR,
    PAGE_VAR,
    ALL_VAR,
    ERROR_FLAG,
    IS_POPUP_VAR,
    TO_FIELD_VAR,
    "_facets",
    "_changelist_filters",
]
#: lookups no list offers: Django would pass them on to the database
UNOFFERED = ["id", "id__in", "id__gt", "data__contains", "task__regex", "worker__name", "created_at__isnull", "zzz"]
#: Django itself answers these with a 400: a _to_field that is not a relation's, a lookup across a relation
REFUSED_BY_DJANGO = {TO_FIELD_VAR, "worker__name"}
#: whole query strings: the date drill-down's arithmetic, and several bad values at once
QUERIES = [
    "created_at__year=9999&created_at__month=12",
    "created_at__year=9999&created_at__month=12&created_at__day=31",
    "created_at__year=2024&created_at__month=2&created_at__day=30",
    "created_at__year=0",
    "created_at__month=1",
    "e=1&zzz=1",
    "q=%00&tag=%00&status__exact=%00",
]
#: ids in a URL that are not ids (or not of anything)
BAD_IDS = {
    "word": "abc",
    "slash": "1/2",
    "negative": "-1",
    "zero": "0",
    "past bigint": "99999999999999999999",
    "NUL": "%00",
    "superscript two": "%C2%B2",
    "Arabic-Indic three": "%D9%A3",
    "lone surrogate": "%ED%A0%80",
    "underscore": "1_0",
    "spaces": "%201%20",
    "10,000 characters": "x" * 10_000,
}
#: each model's object URLs; the job's POST-only buttons answer a GET with 405
OBJECT_VIEWS = {
    "job": ["change", "delete", "history", "live", "events", "cancel", "retry", "edit-retry"],
    "worker": ["change", "delete", "history"],
    "tagstate": ["change", "delete", "history"],
}
POST_ONLY = {"cancel", "retry", "edit-retry"}
LISTS = ["job", "worker", "tagstate"]


def outcome(client, method, url, data=None, follow=False):
    """The status the server answers, or the exception a 500 would come from.

    Each request runs in a savepoint: on PostgreSQL a failed statement would
    otherwise abort every later request of the test.
    """
    try:
        with transaction.atomic():
            response = getattr(client, method)(url, data, follow=follow)
    except Exception as error:  # the test client re-raises what the view raised
        return f"{type(error).__name__}: {str(error)[:120]}"
    return response


@pytest.fixture
def existing():
    job = FinishedJobFactory(status=Status.FAILED, data={"to": "ada@example.com"}, error="bounced", attempts=1)
    JobRunFactory(job=job, outcome="failed", error="bounced")
    JobLogFactory(job=job, message="tried")
    worker = WorkerFactory()
    tag_state = TagState.objects.create(tag="alpha")
    return {"job": job, "worker": worker, "tagstate": tag_state}


def list_url(model):
    return reverse(f"admin:django_kinetik_{model}_changelist")


def list_params(client, model):
    """Every parameter the list reads: Django's own, its filters', its drill-down's, and some it must refuse."""
    cl = client.get(list_url(model)).context.get("cl")
    params = [*LIST_PARAMS, *UNOFFERED]
    if cl is None:  # the tag list is kinetik's own page, not Django's list: it reads no parameter
        return params
    for spec in cl.filter_specs:
        params += spec.expected_parameters()
    if cl.date_hierarchy:
        params += [f"{cl.date_hierarchy}__{part}" for part in ("year", "month", "day")]
    if model == "job":  # read from the page, so a new filter is fuzzed too
        assert {"status__exact", "tag", "task", "created_at__gte", "created_at__year"} <= set(params)
    return sorted(set(params))


def acceptable_list_answer(query, result):
    if isinstance(result, str):
        return False
    if result.status_code == 302:  # Django's answer to a lookup it cannot make: the plain list, flagged
        return urlsplit(result["Location"]).query == f"{ERROR_FLAG}=1"
    if result.status_code == 400:
        return query.partition("=")[0] in REFUSED_BY_DJANGO
    return result.status_code == 200


def everything():
    """What the fuzz must leave as it was: every row of every model the admin shows."""
    return [
        list(Job.objects.order_by("pk").values_list("pk", "status", "data", "attempts")),
        list(Worker.objects.order_by("pk").values_list("pk", "state")),
        list(TagState.objects.order_by("pk").values_list("pk", "paused")),
        JobRun.objects.count(),
    ]


# -- the fuzz -------------------------------------------------------------------------


@pytest.mark.parametrize("model", LISTS)
def test_no_query_string_makes_a_list_answer_500(admin_client, existing, model):
    queries = [f"{param}={value}" for param in list_params(admin_client, model) for value in HOSTILE.values()]
    queries += QUERIES
    before = everything()
    failures = []
    for query in queries:
        result = outcome(admin_client, "get", f"{list_url(model)}?{query}")
        if not acceptable_list_answer(query, result):
            failures.append((query[:60], getattr(result, "status_code", result)))
    assert failures == []
    assert everything() == before


def test_the_dashboard_and_app_index_ignore_any_query_string(admin_client, existing):
    failures = []
    for url in (reverse("admin:django_kinetik_job_dashboard"), reverse("admin:app_list", args=["django_kinetik"])):
        for param in ("q", "tag", "task", "zzz"):
            for value in HOSTILE.values():
                result = outcome(admin_client, "get", f"{url}?{param}={value}")
                if isinstance(result, str) or result.status_code != 200:
                    failures.append((url, param, value[:20], getattr(result, "status_code", result)))
    assert failures == []


@pytest.mark.parametrize("model", LISTS)
def test_every_object_url_answers_a_bad_id_with_404(admin_client, existing, model):
    base = reverse("admin:app_list", args=["django_kinetik"])
    good = existing[model].pk
    assert admin_client.get(f"{base}{model}/{good}/change/").status_code == 200  # the URLs are right
    before = everything()
    failures = []
    for bad in BAD_IDS.values():
        # The bare id redirects to its change page, which is the 404.
        result = outcome(admin_client, "get", f"{base}{model}/{bad}/", follow=True)
        if isinstance(result, str) or result.status_code != 404:
            failures.append((bad[:20], "", getattr(result, "status_code", result)))
        for view in OBJECT_VIEWS[model]:
            for method in ("get", "post"):
                expected = 405 if method == "get" and view in POST_ONLY else 404
                result = outcome(admin_client, method, f"{base}{model}/{bad}/{view}/")
                if isinstance(result, str) or result.status_code != expected:
                    failures.append((bad[:20], view, method, getattr(result, "status_code", result)))
    assert failures == []
    assert everything() == before  # not one of the POSTs (delete, cancel, retry...) wrote anything


def test_the_job_page_s_own_parameters_take_any_value(admin_client, existing):
    job = existing["job"]
    failures = []
    for value in HOSTILE.values():
        for url in (
            f"{reverse('admin:django_kinetik_job_change', args=[job.pk])}?logs_page={value}",
            f"{reverse('admin:django_kinetik_job_live', args=[job.pk])}?after={value}",
        ):
            result = outcome(admin_client, "get", url)
            if isinstance(result, str) or result.status_code != 200:
                failures.append((url[-40:], getattr(result, "status_code", result)))
    assert failures == []


# -- what a user sees -------------------------------------------------------------------


def rows(response):
    return list(response.context["cl"].result_list)


def arabic_indic(number):
    return "".join(chr(0x660 + int(digit)) for digit in str(number))


def test_search_text_that_cannot_be_an_id_is_text_search(admin_client):
    squared = JobFactory(task="math.x²")
    huge = JobFactory(data={"n": "99999999999999999999"})
    other = JobFactory()
    search = list_url("job")
    assert rows(admin_client.get(search, {"q": "²"})) == [squared]
    assert rows(admin_client.get(search, {"q": "#²"})) == []
    assert rows(admin_client.get(search, {"q": "99999999999999999999"})) == [huge]
    # Digits of another script are text, not the job's id.
    assert rows(admin_client.get(search, {"q": arabic_indic(other.pk)})) == []
    assert rows(admin_client.get(search, {"q": f"#{other.pk}"})) == [other]


def test_a_search_too_long_or_holding_a_nul_is_refused_with_a_message(admin_client):
    job = JobFactory(task="x" * 200)
    too_long = admin_client.get(list_url("job"), {"q": "x" * 1_001})
    assert rows(too_long) == []
    assert "Search text is at most 1,000 characters; nothing was searched." in too_long.content.decode()
    assert rows(admin_client.get(list_url("job"), {"q": "x" * 200})) == [job]
    nul = admin_client.get(list_url("job"), {"q": "x\x00"})  # Django's search form refuses it, searching nothing
    assert "Null characters are not allowed." in nul.content.decode()
    assert rows(nul) == [job]


@pytest.mark.parametrize(
    "query",
    [
        "tag=%00",
        "task=a%00b",
        "status__exact=%00",
        "data__contains=x",
        "task__regex=%28",
        "id__in=99999999999999999999",
        "created_at__year=9999",
        "created_at__year=99999999999999999999",
    ],
)
def test_a_filter_the_list_cannot_apply_is_django_s_invalid_lookup_redirect(admin_client, query):
    job = JobFactory()
    response = admin_client.get(f"{list_url('job')}?{query}")
    assert response.status_code == 302
    assert response["Location"] == f"{list_url('job')}?{ERROR_FLAG}=1"
    assert rows(admin_client.get(response["Location"])) == [job]  # the whole list, unfiltered


def test_a_filter_value_nothing_has_shows_an_empty_list(admin_client):
    JobFactory()
    for query in ({"tag": "x" * 10_000}, {"task": "²"}, {"status__exact": "exploded"}):
        page = admin_client.get(list_url("job"), query)
        assert page.status_code == 200 and rows(page) == [], query


@pytest.mark.parametrize("selected", ["abc", "99999999999999999999", "-1", "²", "1_0", " 1", ""])
@pytest.mark.parametrize("action", ["cancel_jobs", "retry_jobs", "run_jobs_now", "delete_selected"])
def test_an_action_on_a_selection_that_is_not_ids_does_nothing(admin_client, action, selected):
    queued, failed = JobFactory(), FinishedJobFactory(status=Status.FAILED)
    for confirmed in ({}, {"confirmed": "yes"}):
        data = {"action": action, "index": 0, "_selected_action": [str(queued.pk), selected], **confirmed}
        page = admin_client.post(list_url("job"), data, follow=True)
        assert page.status_code == 200
        assert "is not the id of a job; nothing was done" in page.content.decode()
    assert sorted(Job.objects.values_list("pk", "status")) == [(queued.pk, Status.QUEUED), (failed.pk, Status.FAILED)]


def test_a_nul_in_a_list_form_is_refused_before_the_database(admin_client, existing):
    job_form = {"action": "delete_selected", "index": 0, "_selected_action": ["\x00"], "confirmed": "yes"}
    assert admin_client.post(list_url("job"), job_form).status_code == 400
    pause = reverse("admin:django_kinetik_tagstate_pause")
    assert admin_client.post(pause, {"tag": "\x00", "next": "\x00"}, follow=True).status_code == 200
    assert (Job.objects.count(), Worker.objects.count(), TagState.objects.count()) == (1, 1, 1)


@pytest.mark.parametrize("tag", ["nosuch", "x" * 300, "", "a b", "\x00"])
@pytest.mark.parametrize("next_url", ["", "https://evil.example/", "//evil.example", "x" * 10_000])
def test_the_pause_button_with_a_forged_tag_or_destination_never_answers_500(admin_client, tag, next_url):
    TagState.objects.create(tag="alpha", paused=False)
    for name in ("pause", "resume"):
        for method in ("get", "post"):
            target = reverse(f"admin:django_kinetik_tagstate_{name}")
            result = outcome(admin_client, method, target, {"tag": tag, "next": next_url})
            assert not isinstance(result, str), result
            assert result.status_code in (200, 302)
            if result.status_code == 302:
                assert not result["Location"].startswith(("http", "//"))
    assert TagState.objects.get(tag="alpha").paused is False
    # Only a tag a job could have is written: "nosuch" is one (resumed last), the others are refused.
    assert set(TagState.objects.values_list("tag", flat=True)) <= {"alpha", "nosuch"}


# -- edit and retry -------------------------------------------------------------------


EDITS = {
    "10,000 nested lists": '{"a": ' + "[" * 10_000 + "]" * 10_000 + "}",
    "10,000 nested objects": '{"a": ' * 10_000 + "{}" + "}" * 10_000,
    "one level past the most": '{"a": ' * MAX_DEPTH + "{}" + "}" * MAX_DEPTH,
    "past MAX_DATA_BYTES": '{"a": "' + "x" * 2_000 + '"}',
    "NUL in a value": '{"to": "ada\\u0000@example.com"}',
    "NUL in a key": '{"\\u0000": 1}',
    "lone surrogate": '{"to": "\\ud800"}',
    "lone surrogate in a key": '{"\\udfff": 1}',
}


@pytest.mark.parametrize("text", EDITS.values(), ids=EDITS.keys())
def test_edit_and_retry_refuses_data_no_database_stores_and_writes_nothing(admin_client, existing, settings, text):
    settings.KINETIK = {**settings.KINETIK, "MAX_DATA_BYTES": 1024}
    job = existing["job"]
    before = list(Job.objects.values_list("pk", "status", "data", "error", "attempts"))
    result = outcome(
        admin_client, "post", reverse("admin:django_kinetik_job_edit_retry", args=[job.pk]), {"data": text}
    )
    assert not isinstance(result, str), result
    assert result.status_code == 200  # the job's page again, with the form's error
    html = result.content.decode()
    error = re.search(r'<ul class="errorlist"><li>(.*?)</li>', html, re.DOTALL)
    assert error is not None and "data" in error.group(1), html[:200]
    assert escape(text) in html  # the text is kept, to be corrected
    assert list(Job.objects.values_list("pk", "status", "data", "error", "attempts")) == before
    assert JobRun.objects.count() == 1


def test_edit_and_retry_still_takes_data_at_the_limits(admin_client, existing, settings):
    settings.KINETIK = {**settings.KINETIK, "MAX_DATA_BYTES": 1024}
    job = existing["job"]
    deepest = '{"a": ' * (MAX_DEPTH - 1) + '{"é": "ü"}' + "}" * (MAX_DEPTH - 1)
    response = admin_client.post(reverse("admin:django_kinetik_job_edit_retry", args=[job.pk]), {"data": deepest})
    assert response.status_code == 302
    job.refresh_from_db()
    assert job.status == Status.QUEUED
    inner = job.data
    for _ in range(MAX_DEPTH - 1):
        inner = inner["a"]
    assert inner == {"é": "ü"}
