import factory
from django.utils import timezone

from django_kinetik.models import Job, JobLog, JobRun, Outcome, Status, Worker


class WorkerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Worker

    name = factory.Sequence(lambda n: f"host:{1000 + n}:abc")
    host = "host"
    pid = factory.Sequence(lambda n: 1000 + n)
    tags = factory.LazyFunction(lambda: ["alpha"])


class JobFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Job

    task = "test.echo"
    tag = "alpha"
    status = Status.QUEUED
    data = factory.LazyFunction(dict)


class FinishedJobFactory(JobFactory):
    status = Status.COMPLETED
    attempts = 1
    started_at = factory.LazyFunction(timezone.now)
    finished_at = factory.LazyFunction(timezone.now)


class JobRunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = JobRun

    job = factory.SubFactory(FinishedJobFactory)
    attempt = 1
    outcome = Outcome.COMPLETED
    started_at = factory.LazyFunction(timezone.now)
    finished_at = factory.LazyFunction(timezone.now)


class JobLogFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = JobLog

    job = factory.SubFactory(FinishedJobFactory)
    message = factory.Sequence(lambda n: f"line {n}")
