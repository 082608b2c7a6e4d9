"""The example project's own tests: how a Django team tests code that creates jobs.

They run with ``python manage.py test`` and with pytest-django alike, on
SQLite (the default) or PostgreSQL/MariaDB (``EXAMPLE_DATABASE=postgres``).
kinetik's own suite runs them both ways (tests/test_user_suites.py) and
checks that nothing is left behind: no test database, no thread, no
connection.
"""

from django.test import TestCase, TransactionTestCase, override_settings

import django_kinetik as kinetik
from django_kinetik.models import Job
from django_kinetik.testing import capture_jobs, run_job

from .background import make_thumbnail

EAGER = {"EAGER": True, "TASKS": {"demo.flaky": {"retry_delay": "1s"}}}


class CreatingJobs(TestCase):
    """Inside a TestCase the jobs are created in the test's transaction, and rolled back after it."""

    def test_a_created_job_waits_for_a_worker(self):
        job = kinetik.create("demo.greet", {"name": "Ada"})
        self.assertEqual(job.status, "queued")
        self.assertEqual(Job.objects.get(pk=job.pk).data, {"name": "Ada"})

    def test_on_commit_callbacks_announce_the_job(self):
        with self.captureOnCommitCallbacks(execute=True) as callbacks:
            kinetik.create("demo.greet", {"name": "Grace"})
        self.assertTrue(callbacks)

    def test_a_django_task_is_enqueued(self):
        with self.captureOnCommitCallbacks(execute=True):
            result = make_thumbnail.enqueue("cat.jpg", size=64)
        self.assertEqual(result.status, "READY")
        self.assertEqual(make_thumbnail.get_result(result.id).args, ["cat.jpg"])

    def test_captured_jobs_run_when_the_test_says(self):
        with capture_jobs() as jobs:
            kinetik.create("demo.greet", {"name": "Linus"})
        self.assertEqual(jobs.tasks(), ["demo.greet"])
        jobs.run()
        self.assertEqual(jobs[0].result, {"greeting": "Hello, Linus!"})

    @override_settings(KINETIK=EAGER)
    def test_eager_mode_runs_the_job_at_once(self):
        job = kinetik.create("demo.greet", {"name": "Barbara"})
        self.assertEqual((job.status, job.result), ("completed", {"greeting": "Hello, Barbara!"}))

    @override_settings(KINETIK=EAGER)
    def test_eager_mode_runs_a_django_task(self):
        result = make_thumbnail.enqueue("dog.png")
        self.assertEqual(result.status, "SUCCESSFUL")
        self.assertEqual(result.return_value, {"thumbnail": "dog-128px.png"})


class CommittingJobs(TransactionTestCase):
    """With real commits: what a view does, and what the event feed and waits see."""

    def test_a_committed_job_runs_and_is_waited_for(self):
        job = kinetik.create("demo.greet", {"name": "Ada"})
        run_job(job)
        self.assertEqual(job.wait(timeout="5s"), {"greeting": "Hello, Ada!"})

    def test_a_wait_on_a_job_nobody_runs_times_out(self):
        job = kinetik.create("demo.greet", {"name": "Nobody"})
        with self.assertRaises(kinetik.WaitTimeout):
            job.wait(timeout="200ms")

    def test_a_cancelled_job_is_announced(self):
        job = kinetik.create("demo.report", {"rows": 1})
        kinetik.cancel(job)
        job.refresh_from_db()
        self.assertEqual(job.status, "cancelled")

    def test_a_django_task_result_is_read_back(self):
        result = make_thumbnail.enqueue("bird.gif", size=32)
        run_job(Job.objects.get(pk=result.id))
        result.refresh()
        self.assertEqual(result.return_value, {"thumbnail": "bird-32px.png"})

    @override_settings(KINETIK=EAGER)
    def test_eager_mode_with_commits(self):
        job = kinetik.create("demo.flaky")
        self.assertEqual((job.status, job.attempts), ("completed", 2))
