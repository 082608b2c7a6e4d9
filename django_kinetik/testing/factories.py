"""factory-boy factories for kinetik's models, for your tests (``pip install factory-boy``).

    from django_kinetik.testing.factories import JobFactory, JobLogFactory

    job = JobFactory(task="send email", data={"to": "ada@example.com"})
    failed = JobFactory(failed=True, error="SMTP refused")
    JobLogFactory.create_batch(3, job=job)

``JobFactory`` makes a queued job; the traits ``delayed``, ``active``,
``completed``, ``failed``, ``timeout`` and ``cancelled`` put it in that state
with the fields a real job in it has. Rows are written directly: no signal,
no Redis push, no eager run (use ``kinetik.create`` for those).
"""

from __future__ import annotations

from datetime import timedelta

try:
    import factory
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError("django_kinetik.testing.factories needs factory-boy: pip install factory-boy") from error
from django.utils import timezone

from ..models import Job, JobLog, JobRun, Outcome, Status, Worker

__all__ = ["FinishedJobFactory", "JobFactory", "JobLogFactory", "JobRunFactory", "WorkerFactory"]


class WorkerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Worker

    name = factory.Sequence(lambda n: f"host:{1000 + n}:abc")
    host = "host"
    pid = factory.Sequence(lambda n: 1000 + n)
    tags = factory.LazyFunction(lambda: ["default"])


def _ended() -> dict[str, object]:
    return {
        "attempts": 1,
        "started_at": factory.LazyFunction(lambda: timezone.now() - timedelta(seconds=1)),
        "finished_at": factory.LazyFunction(timezone.now),
    }


class JobFactory(factory.django.DjangoModelFactory):
    """A queued job; traits give the other states."""

    class Meta:
        model = Job

    task = "example"
    tag = "default"
    status = Status.QUEUED
    data = factory.LazyFunction(dict)

    class Params:
        delayed = factory.Trait(
            status=Status.DELAYED, run_at=factory.LazyFunction(lambda: timezone.now() + timedelta(hours=1))
        )
        active = factory.Trait(
            status=Status.ACTIVE,
            attempts=1,
            started_at=factory.LazyFunction(timezone.now),
            lease_expires_at=factory.LazyFunction(lambda: timezone.now() + timedelta(minutes=1)),
        )
        completed = factory.Trait(status=Status.COMPLETED, **_ended())
        failed = factory.Trait(status=Status.FAILED, error="it failed", **_ended())
        timeout = factory.Trait(status=Status.TIMEOUT, error="timed out after 30s", error_code="timeout", **_ended())
        cancelled = factory.Trait(status=Status.CANCELLED, finished_at=factory.LazyFunction(timezone.now))


class FinishedJobFactory(JobFactory):
    """A completed job."""

    completed = True


class JobRunFactory(factory.django.DjangoModelFactory):
    """One attempt of a (completed) job."""

    class Meta:
        model = JobRun

    job = factory.SubFactory(FinishedJobFactory)
    attempt = 1
    outcome = Outcome.COMPLETED
    started_at = factory.LazyFunction(lambda: timezone.now() - timedelta(seconds=1))
    finished_at = factory.LazyFunction(timezone.now)


class JobLogFactory(factory.django.DjangoModelFactory):
    """A line of a job's log."""

    class Meta:
        model = JobLog

    job = factory.SubFactory(FinishedJobFactory)
    attempt = 1
    message = factory.Sequence(lambda n: f"line {n}")
