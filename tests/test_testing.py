"""The helpers users test their own code with: eager mode, captured jobs, the pytest fixtures, factories."""

import time

import pytest
from django.db import transaction

import django_kinetik as kinetik
from django_kinetik.conf import read_settings
from django_kinetik.models import Job, JobLog, Status
from django_kinetik.testing import capture_jobs, run_job
from django_kinetik.testing.factories import JobFactory, JobLogFactory, JobRunFactory, WorkerFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def eager(settings):
    settings.KINETIK = {**settings.KINETIK, "EAGER": True}


class Wrapping:
    """A middleware: proves eager jobs go through the configured chain."""

    def __init__(self, run):
        self.run = run

    def __call__(self, job):
        job.log("middleware saw it")
        return {"wrapped": self.run(job)}


def test_eager_mode_runs_the_job_before_create_returns(eager, temp_task, received):
    def action(job):
        job.log("working", {"step": 1})
        job.progress(1, 1)
        return {"sum": sum(job.data["numbers"])}

    temp_task("eager.sum", action)
    job = kinetik.create("eager.sum", {"numbers": [1, 2, 3]})
    assert (job.status, job.result, job.attempts) == (Status.COMPLETED, {"sum": 6}, 1)
    assert list(job.logs.values_list("message", "data")) == [("working", {"step": 1})]
    assert (job.progress_current, job.progress_total) == (1, 1)
    assert [name for name, _ in received if name != "job_log" and name != "job_progress"] == [
        "job_created",
        "job_started",
        "job_completed",
    ]


def test_eager_mode_goes_through_the_middleware(eager, settings, temp_task):
    settings.KINETIK = {**settings.KINETIK, "MIDDLEWARE": ["tests.test_testing.Wrapping"]}
    temp_task("eager.plain", lambda job: "done")
    job = kinetik.create("eager.plain")
    assert job.result == {"wrapped": "done"}
    assert list(job.logs.values_list("message", flat=True)) == ["middleware saw it"]


def test_eager_retries_run_at_once_without_waiting_out_the_delay(eager, temp_task):
    attempts = []

    def flaky(job):
        attempts.append(job.attempt)
        if job.attempt < 3:
            raise ConnectionError(f"attempt {job.attempt}")
        return job.attempt

    temp_task("eager.flaky", flaky, retries=3, retry_delay="1h")
    started = time.monotonic()
    job = kinetik.create("eager.flaky")
    assert time.monotonic() - started < 5
    assert (job.status, job.result, attempts) == (Status.COMPLETED, 3, [1, 2, 3])
    assert [run.outcome for run in job.runs.all()] == ["failed", "failed", "completed"]


def test_an_eager_job_that_fails_is_failed_and_create_does_not_raise(eager, temp_task):
    def broken(job):
        raise ValueError("no such customer")

    temp_task("eager.broken", broken)
    job = kinetik.create("eager.broken")
    assert (job.status, job.error) == (Status.FAILED, "no such customer")
    assert job.runs.get().exception == "builtins.ValueError"


def test_an_eager_job_that_overstays_its_timeout_is_recorded_as_timed_out(eager, temp_task):
    temp_task("eager.slow", lambda job: time.sleep(0.3), timeout="50ms")
    job = kinetik.create("eager.slow")
    assert (job.status, job.error_code) == (Status.TIMEOUT, "timeout")


def test_a_delayed_job_runs_now_in_eager_mode(eager, temp_task):
    temp_task("eager.later", lambda job: "ran")
    job = kinetik.create("eager.later", delay="1h")
    assert (job.status, job.result) == (Status.COMPLETED, "ran")


def test_create_many_runs_each_job_in_eager_mode(eager, temp_task):
    temp_task("eager.double", lambda job: job.data["n"] * 2)
    jobs = kinetik.create_many("eager.double", [{"n": 1}, {"n": 2}, {"n": 3}])
    assert [(job.status, job.result) for job in jobs] == [("completed", 2), ("completed", 4), ("completed", 6)]


def test_an_eager_job_created_in_a_transaction_that_rolls_back_leaves_nothing(eager, temp_task):
    temp_task("eager.inside", lambda job: "ran")
    with pytest.raises(RuntimeError), transaction.atomic():
        job = kinetik.create("eager.inside")
        assert job.status == Status.COMPLETED  # it ran inside the transaction
        raise RuntimeError("roll back")
    assert not Job.objects.exists()


def test_eager_must_be_true_or_false():
    _, problems = read_settings({"EAGER": "yes"})
    assert [(problem.id, problem.msg) for problem in problems] == [
        ("kinetik.E004", 'KINETIK["EAGER"] must be True or False, not str.')
    ]


def test_captured_jobs_are_not_run_even_in_eager_mode_until_asked(eager, temp_task):
    temp_task("capture.welcome", lambda job: f"hello {job.data['name']}")
    with capture_jobs() as jobs:
        first = kinetik.create("capture.welcome", {"name": "Ada"})
        kinetik.create_many("capture.welcome", [{"name": "Grace"}])
    assert jobs.tasks() == ["capture.welcome", "capture.welcome"]
    assert first.status == Status.QUEUED and Job.objects.get(pk=first.pk).status == Status.QUEUED
    assert len(jobs.pending()) == 2
    ran = jobs.run()
    assert [job.result for job in ran] == ["hello Ada", "hello Grace"]
    assert jobs.pending() == []
    assert jobs.run() == []  # nothing left to run


def test_running_captured_jobs_also_runs_the_jobs_they_create(temp_task):
    temp_task("capture.child", lambda job: "child done")

    def parent(job):
        kinetik.create("capture.child")
        return "parent done"

    temp_task("capture.parent", parent)
    temp_task("capture.other", lambda job: "other")
    with capture_jobs() as jobs:
        kinetik.create("capture.parent")
        kinetik.create("capture.other")
        ran = jobs.run("capture.parent")
    assert [job.result for job in ran] == ["parent done"]
    assert jobs.tasks() == ["capture.parent", "capture.other", "capture.child"]
    assert [job.status for job in jobs.of("capture.other")] == [Status.QUEUED]
    assert jobs.of("capture.child")[0].status == Status.QUEUED  # only the parent's task was asked for
    jobs.run()
    assert [Job.objects.get(pk=job.pk).status for job in jobs] == [Status.COMPLETED] * 3


def test_run_job_runs_one_job_as_a_worker_would(temp_task):
    temp_task("capture.one", lambda job: job.attempt)
    job = run_job(kinetik.create("capture.one"))
    assert (job.status, job.result) == (Status.COMPLETED, 1)


def test_the_kinetik_jobs_fixture_captures_a_tests_jobs(kinetik_jobs, temp_task):
    temp_task("fixture.signup", lambda job: "sent")
    kinetik.create("fixture.signup", {"email": "ada@example.com"})
    assert [job.data for job in kinetik_jobs.of("fixture.signup")] == [{"email": "ada@example.com"}]
    (job,) = kinetik_jobs.run()
    assert job.result == "sent"


def test_the_kinetik_eager_fixture_turns_eager_mode_on(kinetik_eager, temp_task):
    temp_task("fixture.now", lambda job: "now")
    assert kinetik.create("fixture.now").status == Status.COMPLETED


def test_the_factories_build_jobs_in_every_state_and_their_logs():
    assert JobFactory().status == Status.QUEUED
    delayed = JobFactory(delayed=True)
    assert delayed.status == Status.DELAYED and delayed.run_at > delayed.created_at
    active = JobFactory(active=True, worker=WorkerFactory())
    assert (active.status, active.attempts) == (Status.ACTIVE, 1) and active.lease_expires_at is not None
    for trait, status in [("completed", "completed"), ("failed", "failed"), ("timeout", "timeout")]:
        job = JobFactory(**{trait: True})
        assert (job.status, job.attempts) == (status, 1) and job.started_at <= job.finished_at
    assert JobFactory(cancelled=True).finished_at is not None
    job = JobFactory(task="send email", data={"to": "ada@example.com"})
    JobLogFactory.create_batch(3, job=job)
    messages = list(JobLog.objects.filter(job=job).values_list("message", flat=True))
    assert len(messages) == 3 and all(message.startswith("line ") for message in messages)
    assert JobRunFactory().job.status == Status.COMPLETED


def test_an_eager_job_sees_an_eager_worker_name(eager, temp_task):
    temp_task("eager.whoami", lambda job: job.worker_name)
    assert kinetik.create("eager.whoami").result.startswith("eager:")
