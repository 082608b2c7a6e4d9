"""Django's ``task_finished`` for a failure, and a worker that logs each django.tasks job once.

Django's log receiver takes a failure's exception from ``sys.exc_info()``, so
kinetik sends ``task_finished`` (after the end is committed) with the
attempt's exception being handled: the ERROR record has the traceback.
"""

import logging

import pytest

from django_kinetik.exceptions import JobTimeout
from django_kinetik.tasks_backend import framework, logfilter
from tests.testapp import django_tasks as functions

pytestmark = pytest.mark.django_db(transaction=True)
FAILED = framework.TaskResultStatus.FAILED


@pytest.fixture(autouse=True)
def _loggers_as_in_a_web_process():
    """No worker filters on the loggers (a test that ran ``kinetik_worker`` in-process leaves them)."""
    loggers = [logfilter.framework_logger(), logging.getLogger("django_kinetik.jobs")]
    before = [list(logger.filters) for logger in loggers]
    for logger in loggers:
        logger.filters[:] = [each for each in logger.filters if type(each).__module__ != logfilter.__name__]
    yield
    for logger, filters in zip(loggers, before, strict=True):
        logger.filters[:] = filters


@pytest.fixture
def worker_log(caplog):
    """The log records of a worker (its filters installed as ``kinetik_worker`` does), about job ``id``."""
    caplog.set_level(logging.INFO)
    logfilter.leave_out_repeated_lines()

    def about(job_id):
        words = (f"Job {job_id} ", f"Task id={job_id} ")
        return [record for record in caplog.records if record.getMessage().startswith(words)]

    return about


def test_a_failure_s_error_record_has_the_exception_and_its_traceback(run_worker, caplog):
    caplog.set_level(logging.INFO)
    result = functions.fail.enqueue("card declined")
    run_worker()
    (record,) = [r for r in caplog.records if r.getMessage().startswith(f"Task id={result.id} ") and r.exc_info]
    assert (record.levelno, record.name) == (logging.ERROR, logfilter.framework_logger().name)
    assert record.getMessage().endswith("state=FAILED")
    assert record.exc_info is not None
    error = record.exc_info[1]
    assert isinstance(error, ValueError) and str(error) == "card declined"
    text = logging.Formatter().formatException(record.exc_info)
    assert "tests/testapp/django_tasks.py" in text and "raise ValueError(message)" in text
    assert text.endswith("ValueError: card declined")
    assert "bridge.py" not in text  # the attempt's own traceback, not where it was raised again


def test_task_finished_for_a_failure_follows_the_commit_with_the_exception_being_handled(run_worker):
    import sys

    seen = []

    def receiver(sender, task_result, **kwargs):
        task_result.refresh()  # what a receiver reads back is the committed end
        seen.append((task_result.status, sys.exc_info()[1]))

    framework.task_finished.connect(receiver, weak=False)
    try:
        result = functions.fail.enqueue("no luck")
        run_worker()
    finally:
        framework.task_finished.disconnect(receiver)
    ((status, error),) = seen
    assert status == FAILED
    assert isinstance(error, ValueError) and str(error) == "no luck"
    assert sys.exc_info() == (None, None, None)
    assert result.id


def test_a_failure_that_will_be_retried_is_not_an_end(run_worker, settings, caplog):
    caplog.set_level(logging.INFO)
    settings.KINETIK = {
        **settings.KINETIK,
        "TASKS": {"tests.testapp.django_tasks.flaky": {"retries": 1, "retry_delay": 0}},
    }
    result = functions.flaky.enqueue(5)
    run_worker()
    errors = [r for r in caplog.records if r.getMessage().startswith(f"Task id={result.id} ")]
    assert [r.levelno for r in errors] == [logging.INFO, logging.INFO, logging.ERROR]  # two starts, one end
    assert str(errors[-1].exc_info[1]) == "attempt 2 failed"


def test_a_timeout_s_error_record_carries_job_timeout(run_worker, settings, caplog):
    caplog.set_level(logging.INFO)
    settings.KINETIK = {**settings.KINETIK, "TASKS": {"tests.testapp.django_tasks.sleep": {"timeout": "200ms"}}}
    result = functions.sleep.enqueue(1.5)
    run_worker()
    (record,) = [r for r in caplog.records if r.getMessage().startswith(f"Task id={result.id} ") and r.exc_info]
    assert record.levelno == logging.ERROR
    assert isinstance(record.exc_info[1], JobTimeout) and "timed out after" in str(record.exc_info[1])


def test_a_worker_logs_each_job_once_in_kinetik_s_words_and_a_failure_once_with_its_traceback(run_worker, worker_log):
    added = functions.add.enqueue(1, 2)
    failed = functions.fail.enqueue("no luck")
    run_worker()
    (done,) = worker_log(added.id)
    assert done.getMessage() == f"Job {added.id} (tests.testapp.django_tasks.add) completed."
    (failure,) = worker_log(failed.id)
    assert failure.levelno == logging.ERROR
    assert failure.getMessage().endswith("state=FAILED")
    assert str(failure.exc_info[1]) == "no luck"


def test_a_failure_is_logged_in_kinetik_s_words_when_django_s_line_would_show_nowhere(run_worker, worker_log):
    framework_logger = logfilter.framework_logger()
    framework_logger.disabled = True
    try:
        failed = functions.fail.enqueue("no luck")
        run_worker()
    finally:
        framework_logger.disabled = False
    (failure,) = worker_log(failed.id)
    assert failure.getMessage() == f"Job {failed.id} (tests.testapp.django_tasks.fail) failed: no luck"


def test_another_backend_s_lines_in_a_worker_are_left_alone(worker_log, caplog):
    logfilter.framework_logger().info("Task id=%s path=%s state=%s", "abc", "x.y", "RUNNING")
    assert [r.getMessage() for r in caplog.records] == ["Task id=abc path=x.y state=RUNNING"]
