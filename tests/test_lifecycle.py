"""One lifecycle: every way a job changes state has the same consequences, and hooks see each change."""

import subprocess
import sys
import threading
import time

import pytest

import django_kinetik as kinetik
from django_kinetik import lifecycle
from django_kinetik.fastpath.connection import queue_key
from django_kinetik.middleware import unuse, use
from django_kinetik.models import Job, Status
from django_kinetik.worker import Worker
from tests.conftest import ROOT, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def queued_in_redis(client, tag):
    return [int(member) for member in client.zrange(queue_key(tag), 0, -1)]


def signal_names(received):
    return [name for name, _ in received if name != "queue_empty"]


def test_job_cancel_and_kinetik_cancel_send_the_same_signal(received):
    by_method, by_function = kinetik.create("test.echo"), kinetik.create("test.echo")
    assert by_method.cancel() is True
    kinetik.cancel(by_function)
    cancelled = [kwargs["job"].pk for name, kwargs in received if name == "job_cancelled"]
    assert cancelled == [by_method.pk, by_function.pk]
    assert by_method.status == by_function.status == Status.CANCELLED


def test_job_retry_and_kinetik_retry_both_queue_the_job_in_redis(redis_fastpath):
    by_method, by_function = kinetik.create("test.echo"), kinetik.create("test.echo")
    for job in (by_method, by_function):
        job.cancel()
    redis_fastpath.delete(queue_key("alpha"))
    assert by_method.retry() is True
    kinetik.retry(by_function)
    assert sorted(queued_in_redis(redis_fastpath, "alpha")) == sorted([by_method.pk, by_function.pk])
    assert by_method.status == Status.QUEUED and by_method.attempts == 0


def test_a_timed_out_job_retried_at_once_goes_back_to_redis(redis_fastpath, temp_task):
    temp_task(
        "life.slow_once",
        lambda job: time.sleep(0.5 if job.attempt == 1 else 0),
        tag="alpha",
        timeout="100ms",
        retries=1,
        retry_delay=0,
    )
    job = kinetik.create("life.slow_once")
    worker = Worker(["alpha"], interval=60.0)
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        # The retry is found through Redis, not by the database poll (a minute away).
        assert wait_for(lambda: Job.objects.get(pk=job.pk).status == Status.COMPLETED, 10)
    finally:
        worker.stop()
        thread.join()
    runs = list(Job.objects.get(pk=job.pk).runs.values_list("outcome", flat=True))
    assert runs == ["timeout", "completed"]


class Recorder:
    """A middleware that records every transition it is told about."""

    seen: list = []

    def __init__(self, run):
        self.run = run

    def __call__(self, job):
        return self.run(job)

    def before_transition(self, transition):
        Recorder.seen.append(("before", str(transition.cause), [job.pk for job in transition.jobs]))

    def after_transition(self, transition):
        Recorder.seen.append(("after", str(transition.cause), transition.status))


class Broken(Recorder):
    def after_transition(self, transition):
        raise RuntimeError("a broken hook")

    def before_transition(self, transition):
        raise RuntimeError("a broken hook")


@pytest.fixture
def recorder():
    Recorder.seen = []
    use(Recorder)
    yield Recorder.seen
    unuse(Recorder)


def test_middleware_hooks_see_every_transition_of_a_job(recorder, run_worker):
    job = kinetik.create("test.flaky", {"succeed_on": 2})
    run_worker()
    cancelled = kinetik.create("test.echo", delay="1h")
    cancelled.cancel()
    afters = [(cause, status) for kind, cause, status in recorder if kind == "after"]
    assert afters == [
        ("created", "queued"),
        ("started", "active"),
        ("settled", "queued"),  # the first attempt failed and is retried at once
        ("started", "active"),
        ("settled", "completed"),
        ("created", "delayed"),
        ("cancelled", "cancelled"),
    ]
    befores = [cause for kind, cause, _ in recorder if kind == "before"]
    assert befores == ["started", "settled", "started", "settled", "cancelled"]
    assert ("before", "settled", [job.pk]) in recorder


def test_a_hook_that_raises_is_logged_and_changes_nothing(run_worker, caplog, received):
    use(Broken)
    try:
        job = kinetik.create("test.echo")
        run_worker()
        job.refresh_from_db()
    finally:
        unuse(Broken)
    assert job.status == Status.COMPLETED
    assert "a broken hook" in caplog.text
    assert signal_names(received) == ["job_created", "job_started", "job_completed"]


def test_lifecycle_hooks_are_told_only_about_the_jobs_they_want(run_worker):
    heard = []
    lifecycle.install(heard.append, wants=lambda job: job.task == "test.beta")
    try:
        kinetik.create("test.echo")
        beta = kinetik.create("test.beta")
        run_worker()
    finally:
        lifecycle._installed[:] = [(hook, wants) for hook, wants in lifecycle._installed if hook != heard.append]
    assert {job.pk for transition in heard for job in transition.jobs} == {beta.pk}
    assert [str(transition.cause) for transition in heard] == ["created", "started", "settled"]


def test_a_web_process_imports_nothing_of_the_worker():
    """Settings, the URLconf, the admin and creating a job never load django_kinetik.worker."""
    code = """
import sys, django
django.setup()
from django.test import Client
from django.urls import reverse
from django.contrib.auth.models import User
import django_kinetik as kinetik
from django_kinetik.models import Job
Client().get("/kinetik/api/stats")
client = Client()
client.force_login(User.objects.get_or_create(username="web", is_staff=True, is_superuser=True)[0])
client.get(reverse("admin:django_kinetik_job_changelist"))
client.get(reverse("admin:django_kinetik_job_change", args=[kinetik.create("test.echo").pk]))
kinetik.create_many("test.echo", [{}, {}])
loaded = sorted(name for name in sys.modules if name.startswith("django_kinetik.worker"))
print(",".join(loaded) or "none")
"""
    from tests.conftest import worker_env

    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=worker_env(), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "none"
