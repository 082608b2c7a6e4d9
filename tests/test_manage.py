"""Managing jobs: cancel, retry, clean, fetch, stats, and their commands."""

from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

import django_kinetik as kinetik
from django_kinetik.models import Job, JobLog, JobRun, Status
from tests.factories import FinishedJobFactory, JobFactory, JobLogFactory, JobRunFactory

pytestmark = pytest.mark.django_db


def test_cancel_a_waiting_job(received):
    job = kinetik.create("test.echo", delay="1h")
    cancelled = kinetik.cancel(job.pk)
    assert cancelled.status == Status.CANCELLED and cancelled.finished_at
    assert [name for name, _ in received][-1] == "job_cancelled"
    with pytest.raises(kinetik.InvalidTransition, match="already cancelled"):
        kinetik.cancel(job)


def test_cancel_an_unknown_id_says_so():
    with pytest.raises(kinetik.JobNotFound, match="no job with id 999"):
        kinetik.cancel(999)


def test_retry_queues_a_failed_job_with_a_fresh_set_of_attempts():
    job = JobFactory(status=Status.FAILED, attempts=4, error="boom", error_code="X")
    JobRunFactory(job=job, outcome="failed")
    retried = kinetik.retry(job.pk)
    assert (retried.status, retried.attempts, retried.error, retried.error_code) == (Status.QUEUED, 0, "", "")
    assert retried.runs.count() == 1  # the history stays
    with pytest.raises(kinetik.InvalidTransition, match="only failed or timeout or cancelled"):
        kinetik.retry(job)


def test_fetch_filters_jobs_newest_first():
    old = JobFactory(tag="mail")
    new = JobFactory(tag="mail")
    JobFactory(tag="other")
    assert list(kinetik.fetch(tag="mail")) == [new, old]


def test_stats_counts_by_status_task_and_tag():
    JobFactory.create_batch(2, task="a", tag="t1")
    FinishedJobFactory(task="a", tag="t1")
    JobFactory(task="b", tag="t2", status=Status.FAILED)
    stats = kinetik.stats()
    assert stats["status"]["queued"] == 2
    assert stats["status"]["completed"] == 1 and stats["status"]["failed"] == 1
    assert stats["status"]["active"] == 0
    assert stats["tasks"] == {"a": {"queued": 2, "completed": 1}, "b": {"failed": 1}}
    assert stats["tags"]["t2"] == {"failed": 1}
    assert stats["total"] == 4


def test_clean_deletes_completed_jobs_with_their_logs_and_runs():
    done = FinishedJobFactory.create_batch(3)
    for job in done:
        JobLogFactory(job=job)
        JobRunFactory(job=job)
    failed = JobFactory(status=Status.FAILED)
    queued = JobFactory()
    assert kinetik.clean(batch_size=2) == 3
    assert set(Job.objects.values_list("pk", flat=True)) == {failed.pk, queued.pk}
    assert JobLog.objects.count() == 0 and JobRun.objects.count() == 0


def test_clean_by_tag_status_and_age():
    old = timezone.now() - timedelta(days=10)
    old_mail = FinishedJobFactory(tag="mail", finished_at=old)
    FinishedJobFactory(tag="mail")  # recent
    FinishedJobFactory(tag="other", finished_at=old)
    old_failed = FinishedJobFactory(tag="mail", status=Status.FAILED, finished_at=old)
    assert kinetik.clean(tags="mail", status=["completed", "failed"], older_than="7d") == 2
    assert not Job.objects.filter(pk__in=[old_mail.pk, old_failed.pk]).exists()
    assert Job.objects.count() == 2


def test_clean_never_deletes_live_jobs():
    with pytest.raises(ValueError, match="only deletes finished jobs"):
        kinetik.clean(status="queued")


def test_kinetik_clean_command(capsys):
    old = timezone.now() - timedelta(days=3)
    FinishedJobFactory(tag="mail", finished_at=old)
    FinishedJobFactory(tag="mail", status=Status.CANCELLED, finished_at=old)
    FinishedJobFactory(tag="other")
    call_command("kinetik_clean", "--status", "all", "--tag", "mail", "--older-than", "2d")
    assert "Deleted 2 job(s)." in capsys.readouterr().out
    call_command("kinetik_clean")
    assert "Deleted 1 job(s)." in capsys.readouterr().out
    with pytest.raises(CommandError, match="older-than"):
        call_command("kinetik_clean", "--older-than", "last week")


def test_kinetik_jobs_shows_status_counts_by_task(capsys):
    JobFactory.create_batch(2, task="mail.send")
    FinishedJobFactory(task="mail.send")
    JobFactory(task="report.build", status=Status.FAILED)
    call_command("kinetik_jobs")
    lines = capsys.readouterr().out.splitlines()
    header = lines[0].split()
    assert header[:3] == ["TASK", "QUEUED", "DELAYED"]
    mail = dict(zip(header, next(line for line in lines if line.startswith("mail.send")).split(), strict=True))
    assert (mail["QUEUED"], mail["COMPLETED"], mail["TOTAL"]) == ("2", "1", "3")
    total = dict(zip(header, lines[-1].split(), strict=True))
    assert (total["TASK"], total["FAILED"], total["TOTAL"]) == ("(all)", "1", "4")


def test_pause_and_resume_are_listed_in_tags():
    kinetik.pause("nightly")
    assert "nightly" in kinetik.tags()
    assert kinetik.is_paused("nightly")
    kinetik.resume("nightly")
    assert not kinetik.is_paused("nightly")
    assert kinetik.tags()[:3] == ["alpha", "beta", "gamma"]
