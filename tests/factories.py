"""The suite's factories: the public ones, with the suite's test task as the default."""

from django_kinetik.testing import factories


class WorkerFactory(factories.WorkerFactory):
    tags = factories.factory.LazyFunction(lambda: ["alpha"])


class JobFactory(factories.JobFactory):
    task = "test.echo"
    tag = "alpha"


class FinishedJobFactory(JobFactory):
    completed = True


class JobRunFactory(factories.JobRunFactory):
    job = factories.factory.SubFactory(FinishedJobFactory)


class JobLogFactory(factories.JobLogFactory):
    job = factories.factory.SubFactory(FinishedJobFactory)
