"""A tasks module that retries on an exception class it defines below the task (test_startup.py)."""

import django_kinetik as kinetik


@kinetik.task("startup.retry_on_below", retry_on=["tests.retry_on_below.Flaky"])
def flaky(job):
    raise Flaky("again")


class Flaky(Exception):
    pass
