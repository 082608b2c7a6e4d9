"""An HTTP fuzz of the JSON API and metrics: no URL, query string, method or body a client can send is a 500.

Every answer is JSON (the metrics text aside), a bad id is a 404, a bad
parameter or body a 400 (413 when too large), and a refused request writes
nothing. Walked with a bearer token, so every request reaches the handlers.
"""

from __future__ import annotations

import itertools

import pytest

from django_kinetik.models import Job, JobLog, JobRun
from tests.factories import JobFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("api_tokens")]

BASE = "/kinetik/"
#: query values as they appear in a URL (already percent-encoded where they must be)
HOSTILE_VALUES = [
    "%00",
    "a%00b",
    "%ED%A0%80",  # a lone surrogate's UTF-8-ish bytes: not valid UTF-8
    "%FF%FE",
    "%C2%B2",  # "²", a digit to str.isdigit() but not to int()
    "99999999999999999999",
    "9223372036854775808",
    "-1",
    "0",
    "1e5",
    "1.5",
    "x" * 5000,
    "%27%3B+DROP+TABLE+django_kinetik_job%3B--",
    "%25",
    "[]",
    "",
]
#: each path with the parameters its handler reads, plus one it does not
PATHS = {
    "api/": [],
    "api/stats": [],
    "api/jobs": ["status", "task", "tag", "order", "after", "limit"],
    "api/jobs/{id}": [],
    "api/jobs/{id}/log": ["after", "limit"],
    "api/jobs/{id}/cancel": [],
    "api/jobs/{id}/retry": [],
    "metrics": [],
}
HOSTILE_IDS = ["abc", "1/2", "-1", "0", "99999999999999999999", "%00", "%C2%B2", "1.0", "9223372036854775807"]
METHODS = ["get", "post", "delete", "put", "patch", "options", "head"]
BODIES = [
    b"",
    b"\xff\xfe\x00",
    b"\x00",
    b"{",
    b"[" * 100_000,
    b'{"task": "test.echo", "data": ' + b'{"a": ' * 5000 + b"1" + b"}" * 5000 + b"}",
    b'{"task": "test.echo", "data": {"a": "\\u0000"}}',
    b'{"task": "test.echo", "data": {"a": "\\ud800"}}',
    b'{"task": "test.echo\\u0000", "tag": "t"}',
    b'{"task": "test.echo", "delay": 1e400}',
    b'{"task": "test.echo", "after": [1e400]}',
    b'{"task": "test.echo", "priority": 1e400}',
    b'{"\\ud800": 1}',
    b'[null, 1, "x", [], {"task": 5}]',
    b"NaN",
]


def rows() -> tuple[int, int, int]:
    return Job.objects.count(), JobRun.objects.count(), JobLog.objects.count()


def check(response, path: str) -> None:
    assert response.status_code < 500, f"{path}: {response.status_code} {response.content[:300]!r}"
    if not path.startswith("metrics") and response.status_code != 204 and response.content:
        assert response["Content-Type"].startswith("application/json"), path


def test_no_query_string_is_a_500(api):
    job = JobFactory()
    before = rows()
    tried = 0
    for template, parameters in PATHS.items():
        path = template.format(id=job.pk)
        for name, value in itertools.product([*parameters, "unknown", "%00"], HOSTILE_VALUES):
            url = f"{BASE}{path}?{name}={value}"
            # Reads only: the ones that change a job are walked with bad ids below.
            check(api.get(url), path)
            tried += 1
        check(
            api.get(f"{BASE}{path}?{'&'.join(f'{p}=1' for p in parameters)}&{parameters[0] if parameters else 'x'}=2"),
            path,
        )
    assert tried == sum((len(parameters) + 2) * len(HOSTILE_VALUES) for parameters in PATHS.values())
    assert rows() == before


def test_no_id_is_a_500_and_a_bad_one_is_a_404(api):
    JobFactory()
    before = rows()
    for template, method, job_id in itertools.product([p for p in PATHS if "{id}" in p], METHODS, HOSTILE_IDS):
        url = f"{BASE}{template.format(id=job_id)}"
        response = getattr(api, method)(url)
        check(response, url)
        if method in ("get", "head"):
            assert response.status_code in (404, 405), f"{method} {url}: {response.status_code}"
    assert rows() == before


@pytest.mark.parametrize("body", BODIES, ids=[f"body{index}" for index in range(len(BODIES))])
def test_no_body_is_a_500_and_a_refused_one_writes_nothing(api, body):
    before = rows()
    response = api.generic("POST", f"{BASE}api/jobs", body, content_type="application/json")
    check(response, "api/jobs")
    assert response.status_code in (400, 207), response.content[:300]
    if response.status_code == 400:
        assert rows() == before
    else:
        created = [item["id"] for item in response.json() if "id" in item]
        assert Job.objects.count() - before[0] == len(created)


def test_every_method_on_every_path_answers_json(api):
    job = JobFactory()
    for template, method in itertools.product(PATHS, METHODS):
        path = template.format(id=job.pk)
        check(getattr(api, method)(f"{BASE}{path}"), path)
