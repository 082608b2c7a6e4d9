"""A job's query that dies with the database is not the job's fault; its own bad SQL is."""

import pytest

import django_kinetik as kinetik
from django_kinetik.models import Status
from django_kinetik.outage import connection_lost

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("claim_path")]


def test_an_error_in_the_tasks_own_sql_fails_the_job(run_worker):
    job = kinetik.create("test.bad_sql")
    run_worker()
    job.refresh_from_db()
    assert job.status == Status.FAILED
    assert "kinetik_no_such_table" in job.error
    assert list(job.runs.values_list("outcome", flat=True)) == ["failed"]


@pytest.mark.postgresql  # the code terminates its own server process
def test_a_connection_error_while_the_database_stays_up_is_the_jobs(run_worker):
    job = kinetik.create("test.kill_own_connection")
    run_worker()
    job.refresh_from_db()
    # The very error a restart gives (57P01), but the database never went away.
    assert job.status == Status.FAILED
    assert "terminating connection" in job.error
    assert list(job.runs.values_list("outcome", flat=True)) == ["failed"]


def test_connection_errors_are_told_from_others():
    class Psycopg(Exception):
        sqlstate = "57P01"

    class Syntax(Exception):
        sqlstate = "42601"

    wrapped = RuntimeError("while saving")
    wrapped.__cause__ = Psycopg("terminating connection due to administrator command")
    assert connection_lost(wrapped)
    assert not connection_lost(Syntax("syntax error"))
    assert not connection_lost(ValueError("server closed the connection"))  # not a database error
