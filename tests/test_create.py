from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test import override_settings
from django.utils import timezone

import django_kinetik as kinetik
from django_kinetik.models import Job, Status
from tests.testapp.tasks import echo

pytestmark = pytest.mark.django_db


def test_create_by_task_object_or_by_name():
    by_object = echo.create({"to": "a@example.com"})
    by_name = kinetik.create("test.echo", {"to": "b@example.com"})
    for job in (by_object, by_name):
        job.refresh_from_db()
        assert (job.task, job.tag, job.status, job.attempts) == ("test.echo", "alpha", "queued", 0)
    assert by_name.data == {"to": "b@example.com"}


def test_data_defaults_to_an_empty_object():
    assert kinetik.create("test.echo").data == {}


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [
        ({"when": datetime(2026, 1, 1)}, TypeError, r"data\['when'\] is a datetime.datetime.*isoformat"),
        ({"price": Decimal("1.10")}, TypeError, r"data\['price'\] is a decimal.Decimal"),
        ({"ids": {1, 2}}, TypeError, r"data\['ids'\] is a set"),
        ({"deep": {"list": [1, object()]}}, TypeError, r"data\['deep'\]\['list'\]\[1\]"),
        ({1: "int key"}, TypeError, "keys must be strings"),
        ({"ratio": float("nan")}, ValueError, "JSON cannot represent"),
        ([1, 2, 3], TypeError, "must be a JSON object.*not list"),
        ("a string", TypeError, "must be a JSON object.*not str"),
    ],
)
def test_data_that_is_not_a_json_object_is_refused_and_nothing_is_written(data, error, message):
    with pytest.raises(error, match=message):
        kinetik.create("test.echo", data)
    with pytest.raises(error):
        kinetik.create_many("test.echo", [{"ok": 1}, data])
    assert Job.objects.count() == 0


def test_tuples_are_stored_as_lists():
    job = kinetik.create("test.echo", {"pair": (1, 2)})
    job.refresh_from_db()
    assert job.data == {"pair": [1, 2]}


@pytest.mark.parametrize("delay", ["10ms", "30s", "45m", "2h", "6d", 1500, timedelta(minutes=5)])
def test_delayed_jobs_wait_until_their_time(delay):
    before = timezone.now()
    job = kinetik.create("test.echo", delay=delay)
    assert job.status == Status.DELAYED
    assert job.run_at > before


def test_a_datetime_delay_in_the_past_means_now():
    job = kinetik.create("test.echo", delay=timezone.now() - timedelta(hours=1))
    assert job.status == Status.QUEUED
    assert job.run_at >= job.created_at


@pytest.mark.parametrize(("delay", "error"), [("-5s", ValueError), ("whenever", ValueError), (-10, ValueError)])
def test_a_negative_or_unreadable_delay_is_a_value_error_and_writes_nothing(delay, error):
    with pytest.raises(error):
        kinetik.create("test.echo", delay=delay)
    with pytest.raises(error):
        kinetik.create_many("test.echo", [{}], delay=delay)
    assert Job.objects.count() == 0


def test_priority_accepts_level_names_and_integers():
    assert kinetik.create("test.echo", priority="high").priority == 10
    assert kinetik.create("test.echo", priority="critical").priority == 20
    assert kinetik.create("test.echo", priority=-3).priority == -3
    with pytest.raises(ValueError, match="not a level"):
        kinetik.create("test.echo", priority="urgent")
    assert Job.objects.count() == 3


def test_an_unknown_task_name_is_refused_unless_a_tag_says_where_it_goes():
    with pytest.raises(kinetik.UnknownTask, match="pass tag="):
        kinetik.create("nobody.has.this")
    job = kinetik.create("other.service.task", {"x": 1}, tag="remote")
    assert (job.task, job.tag) == ("other.service.task", "remote")


def test_per_job_options_override_settings_and_task_defaults():
    with override_settings(KINETIK={"TASKS": {"test.echo": {"priority": 7}}}):
        assert kinetik.create("test.echo").priority == 7
        job = kinetik.create("test.echo", priority=1, retries=9, timeout="5s")
    assert job.priority == 1
    assert job.options == {"retries": 9, "timeout": "5s"}
    with pytest.raises(TypeError, match="unknown option 'retrys'"):
        kinetik.create("test.echo", retrys=2)


def test_create_many_inserts_every_job_with_ids():
    jobs = kinetik.create_many("test.echo", [{"n": n} for n in range(250)], priority="low")
    assert len(jobs) == 250 and all(job.pk for job in jobs)
    assert Job.objects.filter(status=Status.QUEUED, priority=-10).count() == 250
    assert sorted(job.data["n"] for job in Job.objects.all()) == list(range(250))


@pytest.mark.django_db(transaction=True)
def test_jobs_created_in_a_rolled_back_transaction_never_exist(received):
    with pytest.raises(RuntimeError), transaction.atomic():
        kinetik.create("test.echo", {"n": 1})
        kinetik.create_many("test.echo", [{"n": 2}, {"n": 3}])
        raise RuntimeError("roll back")
    assert Job.objects.count() == 0
    assert [name for name, _ in received] == []


@pytest.mark.django_db(transaction=True)
def test_job_created_is_sent_when_the_transaction_commits(received):
    with transaction.atomic():
        job = kinetik.create("test.echo")
        assert received == []
    assert [(name, kwargs["job"].pk) for name, kwargs in received] == [("job_created", job.pk)]
    assert received[0][1]["task"] is echo


def test_unique_key_returns_the_live_job_instead_of_a_new_one():
    first = kinetik.create("test.echo", {"n": 1}, unique_key="invoice-42")
    second = kinetik.create("test.echo", {"n": 2}, unique_key="invoice-42")
    assert second.pk == first.pk
    assert Job.objects.count() == 1
    Job.objects.filter(pk=first.pk).update(status=Status.COMPLETED)
    third = kinetik.create("test.echo", {"n": 3}, unique_key="invoice-42")
    assert third.pk != first.pk


def test_creating_a_job_is_one_query_that_djangos_instrumentation_sees(django_assert_num_queries):
    """kinetik's own statements go through Django's cursor: assertNumQueries and the debug toolbar see them."""
    kinetik.create("test.echo")  # the first statement of its kind may be prepared
    with django_assert_num_queries(1) as captured:
        kinetik.create("test.echo", {"n": 1})
    assert "INSERT INTO" in captured.captured_queries[0]["sql"]
    if connection.vendor == "postgresql":  # one INSERT ... SELECT FROM unnest, however many jobs
        with django_assert_num_queries(1):
            kinetik.create_many("test.echo", [{"n": n} for n in range(500)])
