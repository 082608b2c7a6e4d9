"""Periodic tasks: schedule= (cron) and every=, run by the workers, each slot's job created exactly once."""

import json
import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

import django_kinetik as kinetik
from django_kinetik.conf import read_settings
from django_kinetik.exceptions import TaskDefinitionError
from django_kinetik.models import Job, Schedule, Status
from django_kinetik.registry import registry
from django_kinetik.values.schedules import Timing
from django_kinetik.worker import Worker
from django_kinetik.worker import scheduler as scheduler_module

pytestmark = pytest.mark.django_db(transaction=True)

YEARLY = "0 0 1 1 *"


def new_year(offset):
    """Midnight UTC on the 1st of January, ``offset`` years from this one."""
    return datetime(timezone.now().year + offset, 1, 1, tzinfo=UTC)


def at(text):
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# -- defining ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"schedule": "*/5 * * *"}, "has 4 field(s)"),
        ({"schedule": "61 * * * *"}, "is not a valid cron expression"),
        ({"schedule": "0 * * * * *"}, "has 6 field(s)"),
        ({"schedule": 5}, "schedule must be cron text"),
        ({"every": "soon"}, "every 'soon' is not a duration"),
        ({"every": "500ms"}, "every must be at least 1s"),
        ({"schedule": "0 * * * *", "every": "1h"}, "not both"),
        ({"every": "1h", "missed": "run_all"}, "missed 'run_all' is not one of skip, catch_up"),
    ],
)
def test_bad_timing_is_refused_where_the_task_is_defined(options, problem):
    with pytest.raises(TaskDefinitionError, match=r"task 'sched\.bad'") as error:
        kinetik.task("sched.bad", **options)(lambda job: None)
    assert problem in str(error.value)
    assert "sched.bad" not in registry


def test_bad_timing_in_settings_is_kinetik_e006():
    _, problems = read_settings({"TASKS": {"report": {"schedule": "every five minutes"}}})
    assert [problem.id for problem in problems] == ["kinetik.E006"]
    assert "'every five minutes' has 3 field(s)" in problems[0].msg


def test_the_schedule_is_a_task_option_not_a_job_option(temp_task):
    temp_task("sched.report", every="10m")
    with pytest.raises(TypeError, match="every cannot be set for one job"):
        kinetik.create("sched.report", every="1m")


def test_the_chainable_form_and_the_settings_cascade(temp_task, settings):
    task = kinetik.define("sched.chained").every("10m").schedule("0 * * * *", missed="catch_up").action(lambda j: 1)
    try:
        options = task.effective_options()
        assert (options.schedule, options.every, options.missed) == ("0 * * * *", None, "catch_up")
        # A later layer's timing replaces the earlier one.
        settings.KINETIK = {**settings.KINETIK, "TASKS": {"sched.chained": {"every": "30s"}}}
        options = task.effective_options()
        assert (options.schedule, options.every, options.missed) == (None, 30.0, "catch_up")
    finally:
        registry.unregister("sched.chained")


# -- slots ---------------------------------------------------------------------


def test_cron_slots_are_computed_in_utc():
    timing = Timing(cron="*/5 * * * *")
    assert timing.next_after(at("2024-01-01T12:03:10")) == at("2024-01-01T12:05:00")
    assert timing.next_after(at("2024-01-01T12:05:00")) == at("2024-01-01T12:10:00")
    assert timing.latest_until(at("2024-01-01T12:05:00")) == at("2024-01-01T12:05:00")
    assert timing.latest_until(at("2024-01-01T12:09:59.9")) == at("2024-01-01T12:05:00")
    paris = datetime(2024, 7, 1, 14, 3, tzinfo=timezone.get_fixed_timezone(120))  # 12:03 UTC
    assert Timing(cron="0 * * * *").next_after(paris) == at("2024-07-01T13:00:00")
    assert Timing(cron="0 3 * * mon").next_after(at("2024-01-01T12:00:00")) == at("2024-01-08T03:00:00")


def test_every_slots_are_whole_periods_since_the_epoch():
    timing = Timing(every=600.0)
    assert timing.next_after(at("2024-01-01T12:03:10")) == at("2024-01-01T12:10:00")
    assert timing.latest_until(at("2024-01-01T12:03:10")) == at("2024-01-01T12:00:00")
    assert timing.describe() == "every 10m"
    assert Timing(every=3600.0).next_after(at("2024-01-01T12:00:00")) == at("2024-01-01T13:00:00")


# -- running -------------------------------------------------------------------


def due_row(name, schedule, *, last_slot=None, next_slot=None):
    return Schedule.objects.create(
        task=name, schedule=schedule, last_slot=last_slot, next_slot=next_slot or timezone.now() - timedelta(seconds=5)
    )


def test_a_worker_creates_and_runs_the_job_of_a_due_slot(run_worker, temp_task):
    slots = []
    temp_task("sched.tick", lambda job: slots.append(job.data["scheduled_for"]), every="1s")
    due_row("sched.tick", "every 1s")
    run_worker()
    job = Job.objects.get(task="sched.tick")
    assert job.status == Status.COMPLETED
    assert slots == [job.data["scheduled_for"]]
    slot = datetime.fromisoformat(slots[0])
    row = Schedule.objects.get(task="sched.tick")
    assert row.last_slot == slot and row.next_slot == slot + timedelta(seconds=1)
    assert timezone.now() - slot < timedelta(seconds=5)


def test_a_new_periodic_task_starts_at_its_next_slot_without_a_backlog(run_worker, temp_task):
    temp_task("sched.fresh", schedule=YEARLY)
    run_worker()
    row = Schedule.objects.get(task="sched.fresh")
    assert (row.schedule, row.last_slot) == (YEARLY, None)
    assert row.next_slot == new_year(1)
    assert not Job.objects.exists()


def test_a_changed_schedule_moves_the_next_slot(run_worker, temp_task):
    temp_task("sched.changed", schedule=YEARLY)
    due_row("sched.changed", "*/5 * * * *", next_slot=timezone.now() + timedelta(minutes=3))
    run_worker()
    row = Schedule.objects.get(task="sched.changed")
    assert (row.schedule, row.next_slot.month, row.next_slot.day) == (YEARLY, 1, 1)
    assert not Job.objects.exists()


def test_after_downtime_missed_skip_runs_nothing_for_the_missed_slots(run_worker, temp_task):
    temp_task("sched.skip", schedule=YEARLY)
    due_row("sched.skip", YEARLY, last_slot=new_year(-3), next_slot=new_year(-2))
    run_worker()
    assert not Job.objects.exists()
    row = Schedule.objects.get(task="sched.skip")
    assert (row.last_slot, row.next_slot) == (new_year(-3), new_year(1))


def test_after_downtime_missed_catch_up_runs_one_job_for_all_missed_slots(run_worker, temp_task):
    temp_task("sched.catch_up", schedule=YEARLY, missed="catch_up")
    due_row("sched.catch_up", YEARLY, last_slot=new_year(-3), next_slot=new_year(-2))
    run_worker()
    job = Job.objects.get()
    assert job.status == Status.COMPLETED
    assert job.data == {
        "scheduled_for": new_year(0).isoformat(),
        "missed_since": new_year(-2).isoformat(),
    }
    row = Schedule.objects.get(task="sched.catch_up")
    assert (row.last_slot, row.next_slot) == (new_year(0), new_year(1))


def test_workers_racing_for_one_slot_create_exactly_one_job(temp_task, monkeypatch):
    temp_task("sched.race", schedule="* * * * *")
    due_row("sched.race", "* * * * *", last_slot=timezone.now() - timedelta(minutes=10))
    racers = 4
    # Every worker reads the due row before any of them claims it: a real race.
    everyone_read = threading.Barrier(racers, timeout=10)
    read = scheduler_module.Scheduler._read

    def read_then_wait(self, timings):
        rows = read(self, timings)
        if not getattr(self, "raced", False):
            self.raced = True
            everyone_read.wait()
        return rows

    monkeypatch.setattr(scheduler_module.Scheduler, "_read", read_then_wait)
    workers = [Worker(["default"], burst=True, interval=0.01) for _ in range(racers)]
    threads = [threading.Thread(target=worker.run) for worker in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)
    assert all(getattr(worker._scheduler, "raced", False) for worker in workers)
    job = Job.objects.get(task="sched.race")  # exactly one
    assert job.status == Status.COMPLETED
    assert Schedule.objects.get(task="sched.race").last_slot == datetime.fromisoformat(job.data["scheduled_for"])


# -- showing -------------------------------------------------------------------


def test_kinetik_tasks_shows_the_schedule_and_next_run(temp_task, capsys):
    temp_task("sched.listed", schedule="*/5 * * * *")
    temp_task("sched.every", every="10m")
    due_row("sched.listed", "*/5 * * * *", next_slot=datetime(2030, 5, 1, 12, 5, tzinfo=UTC))
    call_command("kinetik_tasks")
    lines = capsys.readouterr().out.splitlines()
    listed = next(line for line in lines if line.startswith("sched.listed"))
    assert "*/5 * * * *" in listed and "2030-05-01 12:05:00 UTC" in listed
    assert "every 10m" in next(line for line in lines if line.startswith("sched.every"))
    assert "SCHEDULE" in lines[0] and "NEXT RUN" in lines[0]
    call_command("kinetik_tasks", "--format", "json")
    by_name = {task["name"]: task for task in json.loads(capsys.readouterr().out)}
    assert by_name["sched.listed"]["next_run"] == "2030-05-01T12:05:00+00:00"
    assert (by_name["sched.every"]["schedule"], by_name["sched.every"]["missed"]) == ("every 10m", "skip")
    assert by_name["test.echo"]["schedule"] is None


def test_the_dashboard_shows_the_schedules(temp_task, admin_client):
    temp_task("sched.shown", schedule="*/5 * * * *")
    due_row(
        "sched.shown",
        "*/5 * * * *",
        last_slot=datetime(2030, 5, 1, 12, 0, tzinfo=UTC),
        next_slot=datetime(2030, 5, 1, 12, 5, tzinfo=UTC),
    )
    temp_task("sched.not_yet", every="1h")
    html = admin_client.get(reverse("admin:django_kinetik_job_dashboard")).content.decode()
    assert "<h2>Schedules" in html
    assert "sched.shown" in html and "2030-05-01 12:05:00" in html and "2030-05-01 12:00:00" in html
    assert "sched.not_yet" in html and "every 1h" in html and "not yet" in html
