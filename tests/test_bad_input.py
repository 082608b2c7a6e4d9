"""One catalogue of bad job input, walked through every way a job is created.

Each entry is refused the same way by ``kinetik.create()``, ``create_many()``,
the JSON API (one job, and a list around good jobs), ``manage.py
kinetik_create`` and ``django.tasks`` enqueue: a ``TypeError``/``ValueError``
(400 from the API, ``CommandError`` from the command) whose message names the
field, and nothing written. Then the same for task definitions and settings,
and what a worker does with text no database stores (it escapes it, so a
failure is always recorded).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

import django_kinetik as kinetik
from django_kinetik.exceptions import TaskDefinitionError
from django_kinetik.models import Job, JobDependency, JobLog, JobRun, Status
from django_kinetik.values.durations import MAX_DURATION
from django_kinetik.values.jsondata import MAX_DEPTH
from tests.testapp import django_tasks as functions

pytestmark = pytest.mark.django_db(transaction=True)

TOKEN = "bad-input-test-token-0123456789"
API = "/kinetik/api/jobs"
SMALL_LIMIT = 4096  # KINETIK["MAX_DATA_BYTES"] in these tests, so "too large" fits in a request


def deep(levels: int) -> dict[str, Any]:
    """``{"a": [[[...]]]}``: an object nesting ``levels`` levels in all (built without recursion)."""
    inner: list[Any] = []
    for _ in range(levels - 2):
        inner = [inner]
    return {"a": inner}


def deep_json(levels: int) -> str:
    return '{"a": ' + "[" * (levels - 1) + "]" * (levels - 1) + "}"


@dataclass
class Bad:
    """One bad input: the ``create()`` arguments that carry it and what the refusal must say."""

    id: str
    says: str
    data: Any = None
    fields: dict[str, Any] = field(default_factory=dict)
    #: the JSON a client would send for ``data`` (when json.dumps cannot write it, or differs)
    data_json: str | None = None
    #: what the API says instead (its parser refuses some things before create() sees them)
    api_says: str | None = None
    #: False: the value cannot be sent as JSON at all (a Python object)
    in_json: bool = True
    #: True: also walked through django.tasks' enqueue (a bad value inside the arguments)
    in_args: bool = False

    @property
    def body_data(self) -> str:
        return self.data_json if self.data_json is not None else json.dumps(self.data)


CATALOGUE = [
    # -- data ----------------------------------------------------------------------------------
    Bad("nul-in-value", "NUL", data={"a": "x\x00y"}, in_args=True),
    Bad("nul-in-key", "NUL", data={"a\x00": 1}),
    Bad("nul-deep-in-a-list", "NUL", data={"a": [1, {"b": ["ok", "\x00"]}]}, in_args=True),
    Bad("lone-surrogate-value", "surrogate", data={"a": "\ud800"}, in_args=True),
    Bad("lone-surrogate-key", "surrogate", data={"\udfff": 1}),
    Bad("nested-one-too-deep", f"more than {MAX_DEPTH} levels", data=deep(MAX_DEPTH + 1), in_args=True),
    Bad("nested-10000-deep", "nested", data=deep(10_000), data_json=deep_json(10_000), in_args=True),
    Bad("too-large", "MAX_DATA_BYTES", data={"pad": "x" * SMALL_LIMIT}, in_args=True),
    Bad("nan", "JSON cannot represent", data={"a": float("nan")}, data_json='{"a": NaN}', api_says="NaN"),
    Bad(
        "infinity", "JSON cannot represent", data={"a": float("inf")}, data_json='{"a": Infinity}', api_says="Infinity"
    ),
    Bad("not-json-type", "not JSON-serialisable", data={"when": datetime(2030, 1, 1)}, in_json=False),
    Bad("non-string-key", "keys must be strings", data={1: "a"}, in_json=False),
    Bad("data-not-an-object", "JSON object", data=[1, 2]),
    # -- names and keys ----------------------------------------------------------------------
    Bad("tag-nul", "tag", fields={"tag": "ma\x00il"}),
    Bad("tag-too-long", "tag", fields={"tag": "t" * 101}),
    Bad("tag-with-space", "tag", fields={"tag": "my tag"}),
    Bad("tag-empty", "tag", fields={"tag": ""}),
    Bad("tag-not-text", "tag must be a string", fields={"tag": 5}),
    Bad("task-with-colon", "reserved", fields={"task": "other:service", "tag": "elsewhere"}),
    Bad("task-too-long", "characters long", fields={"task": "t" * 201, "tag": "elsewhere"}),
    Bad("task-nul", "NUL", fields={"task": "other\x00task", "tag": "elsewhere"}),
    Bad("task-unknown", "No task named", fields={"task": "nobody.has.this"}),
    Bad("unique-key-too-long", "unique_key is 201 characters", fields={"unique_key": "k" * 201}),
    Bad("unique-key-10000", "never cut short", fields={"unique_key": "k" * 10_000}),
    Bad("unique-key-nul", "unique_key contains a NUL", fields={"unique_key": "a\x00b"}),
    Bad("unique-key-surrogate", "unique_key contains a lone surrogate", fields={"unique_key": "a\ud800"}),
    Bad("unique-key-not-text", "unique_key must be a string", fields={"unique_key": 5}),
    Bad("limit-key-10000", "limit_key is 10000 characters", fields={"limit_key": "k" * 10_000}),
    Bad("limit-key-nul", "limit_key contains a NUL", fields={"limit_key": "\x00"}),
    # -- durations and dates -------------------------------------------------------------------
    Bad("delay-99999999d", "longer than 3650 days", fields={"delay": "99999999d"}),
    Bad("delay-1e30", "longer than 3650 days", fields={"delay": 1e30}),
    Bad("delay-huge-int", "longer than 3650 days", fields={"delay": 10**400}, in_json=False),
    Bad("delay-negative", "cannot be negative", fields={"delay": -1}),
    Bad("delay-words", "not a duration", fields={"delay": "soon"}),
    Bad("delay-unicode-digits", "not a duration", fields={"delay": "²"}),
    Bad("delay-year-9999", "days ahead", fields={"delay": datetime(9999, 12, 31, tzinfo=UTC)}),
    Bad("delay-not-a-duration", "delay must be", fields={"delay": [1]}),
    Bad("timeout-99999999d", "timeout", fields={"options": {"timeout": "99999999d"}}),
    Bad("timeout-zero", "timeout must be longer than zero", fields={"options": {"timeout": 0}}),
    Bad("retry-delay-99999999d", "retry_delay", fields={"options": {"retry_delay": "99999999d"}}),
    Bad("retry-max-delay-huge", "retry_max_delay", fields={"options": {"retry_max_delay": "99999999d"}}),
    # -- numbers -------------------------------------------------------------------------------
    Bad("retries-huge", "the most a job counts", fields={"options": {"retries": 10**12}}),
    Bad("retries-negative", "retries cannot be negative", fields={"options": {"retries": -1}}),
    Bad("retries-text", "retries must be an integer", fields={"options": {"retries": "3"}}),
    Bad("ghost-retries-huge", "ghost_retries", fields={"options": {"ghost_retries": 2**40}}),
    Bad("jitter-over-one", "retry_jitter", fields={"options": {"retry_jitter": 2}}),
    Bad("backoff-unknown", "backoff", fields={"options": {"backoff": "quadratic"}}),
    Bad("priority-huge", "out of range", fields={"priority": 10**20}),
    Bad("priority-unknown", "not a level", fields={"priority": "urgent"}),
    Bad("priority-float", "priority must be", fields={"priority": 1.5}),
    Bad("after-huge-id", "no job with id", fields={"after": [99999999999999999999]}),
    Bad("after-zero", "no job with id", fields={"after": [0]}),
    Bad("after-missing-job", "no job", fields={"after": [123456]}),
    Bad("after-text", "after must hold jobs or job ids", fields={"after": ["x"]}),
    Bad("after-not-a-list", "after must be a list", fields={"after": 5}),
    Bad("option-per-task-only", "retry_on", fields={"options": {"retry_on": ["x.Error"]}}, in_json=False),
]
IDS = [bad.id for bad in CATALOGUE]


@pytest.fixture(autouse=True)
def _small_data_limit_and_a_token(settings):
    settings.KINETIK = {**settings.KINETIK, "MAX_DATA_BYTES": SMALL_LIMIT, "API_TOKENS": [TOKEN]}


def rows() -> tuple[int, ...]:
    return Job.objects.count(), JobDependency.objects.count(), JobRun.objects.count(), JobLog.objects.count()


def create_args(bad: Bad) -> tuple[str, Any, dict[str, Any]]:
    fields = dict(bad.fields)
    task = fields.pop("task", "test.echo")
    options = fields.pop("options", {})
    return task, bad.data, {**fields, **options}


def assert_refused(error: BaseException, says: str) -> None:
    assert isinstance(error, (TypeError, ValueError)), f"{type(error).__name__}: {error}"
    assert says in str(error)


@pytest.mark.parametrize("bad", CATALOGUE, ids=IDS)
def test_create_refuses_it_and_writes_nothing(bad):
    before = rows()
    task, data, kwargs = create_args(bad)
    with pytest.raises(Exception) as caught:
        kinetik.create(task, data, **kwargs)
    assert_refused(caught.value, bad.says)
    assert rows() == before


def where(test) -> list[Bad]:
    """The entries an entry point can be given at all (create_many has no keys, a client sends only JSON)."""
    return [bad for bad in CATALOGUE if test(bad)]


def sendable(bad: Bad) -> bool:
    return bad.in_json and not any(isinstance(value, datetime) for value in bad.fields.values())


@pytest.mark.parametrize(
    "bad", where(lambda bad: not {"unique_key", "limit_key"} & set(bad.fields)), ids=lambda bad: bad.id
)
def test_create_many_refuses_the_whole_batch(bad):
    task, data, kwargs = create_args(bad)
    before = rows()
    with pytest.raises(Exception) as caught:
        kinetik.create_many(task, [{"good": 1}, data, {"good": 2}], **kwargs)
    assert_refused(caught.value, bad.says)
    assert rows() == before


def api_item(bad: Bad) -> str:
    """The JSON text of one job request carrying ``bad`` (hand-built: some of it json.dumps cannot write)."""
    task, _, kwargs = create_args(bad)
    parts = [f'"task": {json.dumps(task)}']
    if bad.data is not None:
        parts.append(f'"data": {bad.body_data}')
    parts += [f"{json.dumps(name)}: {json.dumps(value)}" for name, value in kwargs.items()]
    return "{" + ", ".join(parts) + "}"


def post(body: str):
    return Client(headers={"Authorization": f"Bearer {TOKEN}"}).post(API, body, content_type="application/json")


@pytest.mark.parametrize("bad", where(sendable), ids=lambda bad: bad.id)
def test_the_api_answers_400_naming_the_problem(bad):
    before = rows()
    response = post(api_item(bad))
    assert response.status_code == 400, response.content[:300]
    assert response["Content-Type"] == "application/json"
    assert (bad.api_says or bad.says) in response.json()["error"]
    assert rows() == before


# Not the ones the body's parser refuses before any item is looked at (a 400 for the whole request).
@pytest.mark.parametrize(
    "bad", where(lambda bad: sendable(bad) and bad.api_says is None and bad.id != "nested-10000-deep"), ids=str
)
def test_a_bad_item_in_a_list_writes_exactly_the_good_ones(bad):
    good = '{"task": "test.echo", "data": {"n": 1}}'
    response = post(f"[{good}, {api_item(bad)}, {good}]")
    assert response.status_code == 207, response.content[:300]
    first, refused, last = response.json()
    assert refused["error"].startswith("item 1: ") and bad.says in refused["error"]
    # Exactly what the answer reports as created exists: no more, no fewer.
    assert sorted(Job.objects.values_list("pk", flat=True)) == [first["id"], last["id"]]


def cli_arguments(bad: Bad) -> list[str]:
    task, _, kwargs = create_args(bad)
    arguments = [task, bad.body_data if bad.data is not None else "{}"]
    for name, value in kwargs.items():
        if name in ("delay", "tag", "priority", "unique_key"):
            text = value if isinstance(value, str) else json.dumps(value)
            arguments += [f"--{name.replace('_', '-')}", text]
        elif name == "after":
            arguments += [item for job_id in value for item in ("--after", str(job_id))]
        else:
            arguments += ["--option", f"{name}={json.dumps(value)}"]
    return arguments


def on_the_command_line(bad: Bad) -> bool:
    # Not limit_key or a bare after= (no such option), nor non-text (a shell passes 5 as the valid '5').
    fields = bad.fields
    return (
        sendable(bad)
        and "limit_key" not in fields
        and not isinstance(fields.get("after"), int)
        and not bad.id.endswith("-not-text")
    )


@pytest.mark.parametrize("bad", where(on_the_command_line), ids=lambda bad: bad.id)
def test_kinetik_create_turns_it_into_a_command_error(bad):
    before = rows()
    with pytest.raises(CommandError) as caught:
        call_command("kinetik_create", *cli_arguments(bad))
    assert "\n" not in str(caught.value)
    assert rows() == before


@pytest.mark.parametrize("bad", [bad for bad in CATALOGUE if bad.in_args], ids=lambda bad: bad.id)
def test_django_tasks_enqueue_refuses_bad_arguments(bad):
    before = rows()
    with pytest.raises((TypeError, ValueError)):
        functions.add.enqueue(bad.data["a"] if "a" in bad.data else bad.data, 1)
    assert rows() == before


# -- where tasks are defined -------------------------------------------------------------------

BAD_DEFINITIONS = [
    ("schedule-never-fires", {"schedule": "0 0 31 2 *"}, "never fires"),
    ("schedule-not-cron", {"schedule": "every day"}, "field(s)"),
    ("every-99999999d", {"every": "99999999d"}, "longer than 3650 days"),
    ("retry-delay-99999999d", {"retry_delay": "99999999d"}, "longer than 3650 days"),
    ("timeout-99999999d", {"timeout": "99999999d"}, "longer than 3650 days"),
    ("retries-huge", {"retries": 10**12}, "the most a job counts"),
    ("rate-period-huge", {"rate_limit": "1/99999999d"}, "rate_limit"),
]


@pytest.mark.parametrize(
    ("options", "says"), [case[1:] for case in BAD_DEFINITIONS], ids=[c[0] for c in BAD_DEFINITIONS]
)
def test_a_task_definition_refuses_it_where_it_is_written(temp_task, options, says):
    with pytest.raises(TaskDefinitionError) as caught:
        temp_task("test.bad_definition", **options)
    assert isinstance(caught.value, ValueError)
    assert says in str(caught.value)
    assert "test.bad_definition" not in kinetik.registry


@pytest.mark.parametrize(
    "name", ["a:b", "a\x00b", "a\ud800b", "x" * 201, " "], ids=["colon", "nul", "surrogate", "long", "blank"]
)
def test_a_task_name_is_checked_as_create_checks_it(temp_task, name):
    with pytest.raises(TaskDefinitionError):
        temp_task(name)


@pytest.mark.parametrize(
    ("options", "says"), [case[1:] for case in BAD_DEFINITIONS], ids=[c[0] for c in BAD_DEFINITIONS]
)
def test_manage_py_check_reports_it_in_settings(settings, options, says):
    from django_kinetik.checks import check_settings

    settings.KINETIK = {**settings.KINETIK, "TASKS": {"test.echo": options}}
    messages = check_settings(None)
    assert any(says in message.msg for message in messages), [message.msg for message in messages]


# -- what workers do with what a task hands back ------------------------------------------------


def test_a_retry_far_ahead_is_capped_and_recorded_not_lost(temp_task, run_worker):
    def fail(job):
        raise RuntimeError("always")

    temp_task("test.far_retry", fail, retries=3, retry_delay="3000d", backoff="exponential", retry_max_delay=None)
    job = kinetik.create("test.far_retry")
    run_worker()
    job.refresh_from_db()
    assert job.status == Status.DELAYED
    assert job.run_at <= timezone.now() + MAX_DURATION + timedelta(minutes=1)
    run = JobRun.objects.get(job=job)
    assert run.error == "always"


def test_text_no_database_stores_is_escaped_in_errors_and_logs(temp_task, run_worker):
    def noisy(job):
        job.log("line with \x00 and \ud800")
        raise ValueError("bad \x00 byte \udfff")

    temp_task("test.noisy", noisy)
    job = kinetik.create("test.noisy")
    run_worker()
    job.refresh_from_db()
    assert job.status == Status.FAILED
    assert job.error == "bad \\x00 byte \\udfff"
    assert JobLog.objects.get(job=job, message__startswith="line").message == "line with \\x00 and \\ud800"


def test_a_result_no_database_stores_fails_the_job_saying_why(temp_task, run_worker):
    temp_task("test.nul_result", lambda job: {"text": "a\x00b"})
    job = kinetik.create("test.nul_result")
    run_worker()
    job.refresh_from_db()
    assert job.status == Status.FAILED
    assert "the task's return value['text'] contains a NUL" in job.error


@pytest.mark.parametrize("job_id", [0, -1, 2**63, 10**30, "99999999999999999999", "abc", "²", None, 1.5])
def test_a_job_id_no_row_can_have_is_not_found_everywhere_in_python(job_id):
    from django_kinetik.exceptions import JobNotFound

    for action in (kinetik.cancel, kinetik.retry, kinetik.get_job):
        with pytest.raises(JobNotFound):
            action(job_id)


@pytest.mark.parametrize(
    "current", [float("nan"), float("inf"), 10**400, 1e300], ids=["nan", "inf", "huge-int", "1e300"]
)
def test_progress_no_database_stores_is_refused_in_the_code_that_reports_it(temp_task, run_worker, current):
    def report(job):
        job.progress(current, 10)

    temp_task("test.bad_progress", report)
    job = kinetik.create("test.bad_progress")
    run_worker()
    job.refresh_from_db()
    assert job.status == Status.FAILED
    assert "progress current must be a finite number" in job.error
    assert job.progress_current is None
