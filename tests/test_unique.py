"""Unique tasks: ``@kinetik.task(..., unique=...)`` keeps one live job per key."""

import threading

import pytest
from django.db import connections
from django.test import override_settings

import django_kinetik as kinetik
from django_kinetik.models import Job, Status
from django_kinetik.values.keys import MAX_KEY_LENGTH

pytestmark = pytest.mark.django_db


def test_unique_true_keys_on_the_whole_data_whatever_its_key_order(temp_task):
    sync = temp_task("sync everything", tag="alpha", unique=True)
    first = sync.create({"a": 1, "b": [1, 2]})
    assert sync.create({"b": [1, 2], "a": 1}).pk == first.pk
    other = sync.create({"a": 2, "b": [1, 2]})
    assert other.pk != first.pk
    assert Job.objects.count() == 2
    assert first.unique_key.startswith("sync everything:")


def test_unique_by_data_keys_keeps_one_live_job_per_customer(temp_task):
    sync = temp_task("sync customer", tag="alpha", unique=("customer_id",))
    first = sync.create({"customer_id": 7, "reason": "signup"})
    again = kinetik.create("sync customer", {"customer_id": 7, "reason": "edit"})
    assert again.pk == first.pk and again.data == {"customer_id": 7, "reason": "signup"}
    assert sync.create({"customer_id": 8}).pk != first.pk
    assert first.unique_key == 'sync customer:{"customer_id":7}'


def test_a_delayed_job_counts_as_live_and_a_finished_one_does_not(temp_task):
    sync = temp_task("sync customer", tag="alpha", unique=("customer_id",))
    delayed = sync.create({"customer_id": 7}, delay="1h")
    assert sync.create({"customer_id": 7}).pk == delayed.pk
    Job.objects.filter(pk=delayed.pk).update(status=Status.FAILED)
    assert sync.create({"customer_id": 7}).pk != delayed.pk


def test_a_unique_function_returns_the_key_or_none_for_not_unique(temp_task):
    sync = temp_task("sync order", tag="alpha", unique=lambda data: data.get("order") and f"order-{data['order']}")
    assert sync.create({"order": 1}).pk == sync.create({"order": 1, "x": 2}).pk
    assert sync.create({}).pk != sync.create({}).pk
    assert Job.objects.get(data={"order": 1}).unique_key == "sync order:order-1"


def test_an_explicit_unique_key_wins_over_the_task_option(temp_task):
    sync = temp_task("sync customer", tag="alpha", unique=("customer_id",))
    first = sync.create({"customer_id": 7}, unique_key="mine")
    assert first.unique_key == "mine"
    assert sync.create({"customer_id": 7}).pk != first.pk
    assert sync.create({"customer_id": 8}, unique_key="mine").pk == first.pk


def test_keys_longer_than_the_column_are_hashed_down(temp_task):
    sync = temp_task("sync blob", tag="alpha", unique=("blob",))
    first = sync.create({"blob": "x" * 500})
    assert len(first.unique_key) <= MAX_KEY_LENGTH
    assert sync.create({"blob": "x" * 500}).pk == first.pk
    # Same head, different tail: a different key.
    assert sync.create({"blob": "x" * 499 + "y"}).pk != first.pk
    assert Job.objects.count() == 2


def test_data_without_a_unique_key_is_refused_and_nothing_is_written(temp_task):
    sync = temp_task("sync customer", tag="alpha", unique=("customer_id",))
    with pytest.raises(ValueError, match="unique by customer_id, but the data has no 'customer_id'"):
        sync.create({"customer": 7})
    assert Job.objects.count() == 0


def test_a_unique_function_must_return_a_string_or_none(temp_task):
    sync = temp_task("sync order", tag="alpha", unique=lambda data: data["order"])
    with pytest.raises(TypeError, match="must return a string or None, not int"):
        sync.create({"order": 1})


@pytest.mark.parametrize(
    ("unique", "message"),
    [
        ("customer_id", r"unique cannot be str; use True.*tuple of data keys such as \('customer_id',\)"),
        ((), "at least one data key"),
        (("customer_id", 3), "data keys must be non-empty strings, not 3"),
        (1, "unique cannot be int"),
    ],
)
def test_a_bad_unique_option_is_refused_where_the_task_is_defined(unique, message):
    with pytest.raises(kinetik.TaskDefinitionError, match=message):
        kinetik.task("never defined", unique=unique)(lambda job: None)
    with pytest.raises(kinetik.TaskDefinitionError, match=message):
        kinetik.define("never defined").unique(unique)
    assert "never defined" not in kinetik.registry


def test_the_chainable_form_and_settings_make_a_task_unique(temp_task):
    chained = kinetik.define("sync chained").tag("alpha").unique(["customer_id"]).action(lambda job: None)
    try:
        assert chained.options.unique == ("customer_id",)
        assert chained.create({"customer_id": 1}).pk == chained.create({"customer_id": 1}).pk
    finally:
        kinetik.registry.unregister("sync chained")
    plain = temp_task("sync plain", tag="alpha")
    with override_settings(KINETIK={"TASKS": {"sync plain": {"unique": True}}}):
        assert plain.create({"n": 1}).pk == plain.create({"n": 1}).pk
    assert Job.objects.filter(task="sync plain").count() == 1


def test_unique_is_not_a_per_job_option():
    with pytest.raises(TypeError, match="unique cannot be set for one job"):
        kinetik.create("test.echo", {"n": 1}, unique=True)
    assert Job.objects.count() == 0


def test_create_many_refuses_a_unique_task_and_writes_nothing(temp_task):
    sync = temp_task("sync customer", tag="alpha", unique=("customer_id",))
    with pytest.raises(TypeError, match=r"create_many: task 'sync customer' is unique; .*create\(\)"):
        sync.create_many([{"customer_id": 1}, {"customer_id": 2}])
    assert Job.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_concurrent_creates_of_the_same_unique_job_make_exactly_one(temp_task, run_worker):
    sync = temp_task("sync customer", tag="alpha", unique=("customer_id",))
    threads_count = 8
    barrier = threading.Barrier(threads_count)
    ids: list[int] = []
    errors: list[BaseException] = []

    def create() -> None:
        try:
            barrier.wait(timeout=10)
            ids.append(kinetik.create("sync customer", {"customer_id": 42}).pk)
        except BaseException as error:  # reported by the assertion below
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=create) for _ in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    (job,) = Job.objects.filter(task="sync customer")
    assert ids == [job.pk] * threads_count

    run_worker("alpha", concurrency=1)
    job.refresh_from_db()
    assert job.status == Status.COMPLETED
    assert sync.create({"customer_id": 42}).pk != job.pk
