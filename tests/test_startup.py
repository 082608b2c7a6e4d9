"""What a newcomer meets first: a worker before migrate, a project without tasks, a typo, a bad definition."""

import subprocess
import sys
import threading

import pytest
from django.core.checks import run_checks
from django.db import connection
from django.test import override_settings

import django_kinetik as kinetik
from django_kinetik.registry import registry
from tests.conftest import ROOT, wait_for, worker_env

MIGRATE_HINT = "Run `python manage.py migrate`"


def follow(process):
    """The process's output lines as they come, read in a thread."""
    lines = []

    def read():
        with process.stdout:
            for line in process.stdout:
                lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    return lines, reader


def start(*args, env):
    return subprocess.Popen(
        [sys.executable, "-m", "django", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.fixture
def empty_database(tmp_path):
    """The environment of processes on a database of their own with no tables in it (nothing migrated)."""
    env = worker_env()
    if connection.vendor == "sqlite":
        env["KINETIK_TEST_WORKER_DB"] = str(tmp_path / "unmigrated.sqlite3")
        yield env
        return
    name = f"{connection.settings_dict['NAME']}_unmigrated"
    # PostgreSQL drops it even while a killed worker's connection lingers; MariaDB has no such refusal.
    drop = f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)' if connection.vendor == "postgresql" else None
    if drop is None:
        drop = f"DROP DATABASE IF EXISTS `{name}`"
    with connection.cursor() as cursor:
        cursor.execute(drop)
        cursor.execute(f"CREATE DATABASE {connection.ops.quote_name(name)}")
    env["KINETIK_TEST_WORKER_DB"] = name
    yield env
    with connection.cursor() as cursor:
        cursor.execute(drop)


# -- a worker started before migrate ----------------------------------------------


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_worker_before_migrate_says_to_run_migrate_and_starts_once_it_has_run(empty_database):
    worker = start("kinetik_worker", "--burst", "alpha", env=empty_database)
    lines, reader = follow(worker)
    try:
        assert wait_for(lambda: any(MIGRATE_HINT in line for line in lines), 30), "".join(lines)
        # It keeps waiting (it does not give up, nor repeat itself every second).
        assert not wait_for(lambda: worker.poll() is not None, 3), "".join(lines)
        hints = [line for line in lines if MIGRATE_HINT in line]
        assert len(hints) == 1, "".join(lines)
        assert "kinetik's tables" in hints[0] and "are missing" in hints[0]
        assert "Traceback" not in "".join(lines)

        migrate = subprocess.run(
            [sys.executable, "-m", "django", "migrate", "-v", "0"],
            cwd=ROOT,
            env=empty_database,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert migrate.returncode == 0, migrate.stderr

        # Then it starts as usual: with --burst it finds nothing to run and exits 0.
        assert worker.wait(timeout=60) == 0, "".join(lines)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    reader.join(timeout=10)
    output = "".join(lines)
    assert "tables are in place now; starting" in output
    assert "serving alpha" in output
    assert "Traceback" not in output and "cannot reach the database" not in output


@pytest.mark.django_db
def test_a_migrated_database_needs_no_waiting():
    from django_kinetik.worker.startup import schema_problem

    assert schema_problem("default") is None


# -- a project with no tasks -------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("options", [[], ["--processes", "2"]], ids=["one process", "supervised"])
def test_a_worker_with_no_tasks_is_one_line_of_error_and_exit_status_1(options):
    env = dict(worker_env(), DJANGO_SETTINGS_MODULE="tests.settings_without_tasks")
    done = subprocess.run(
        [sys.executable, "-m", "django", "kinetik_worker", *options],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        "CommandError: No kinetik tasks are registered, so this worker has nothing to run. "
        "Define tasks with @kinetik.task in an installed app's tasks.py, or configure "
        "django_kinetik.tasks_backend.KinetikTaskBackend in TASKS to run django.tasks functions."
    ]


# -- a tag no task uses ----------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_serving_a_tag_no_task_uses_warns_and_names_the_known_tags(start_worker):
    kinetik.pause("held")
    code, output = _burst(start_worker, "notifcations", "alpha")
    assert code == 0, output
    warnings = [line for line in output.splitlines() if "WARNING" in line and "notifcations" in line]
    assert len(warnings) == 1, output
    # The tags of this project's tasks, its django.tasks queues, and the tags known from the database.
    known = warnings[0].split("Known tags: ", 1)[1]
    for tag in ("alpha", "beta", "default", "mail", "held"):
        assert tag in known.rstrip(".").split(", "), warnings[0]
    assert "'alpha'" not in warnings[0]  # a tag a task uses is not warned about


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_serving_known_tags_warns_about_nothing(start_worker):
    code, output = _burst(start_worker, "alpha", "mail", "-v", "0")
    assert code == 0, output
    assert output == ""


def _burst(start_worker, *args):
    process = start_worker("--burst", *args)
    output, _ = process.communicate(timeout=60)
    return process.returncode, output


# -- definitions refused at once ----------------------------------------------------


def _refused(match, name="startup.refused", **options):
    try:
        with pytest.raises(kinetik.TaskDefinitionError, match=match) as refused:
            action = options.pop("action", None) or (lambda job: None)
            kinetik.task(name, **options)(action)
    finally:
        registry.unregister(name)
    assert name not in registry
    return str(refused.value)


@pytest.mark.parametrize(
    "path, reason",
    [
        ("nonexistent.Error", r"cannot be imported \(No module named 'nonexistent'\)"),
        ("json.NoSuchError", r"cannot be imported \(module 'json' has no attribute 'NoSuchError'\)"),
        ("json.dumps", r"is not an exception class"),
    ],
)
def test_retry_on_a_path_that_names_no_exception_class_is_refused_at_definition(path, reason):
    message = _refused(f"retry_on entry '{path}' {reason}", retry_on=[path])
    assert isinstance(kinetik.TaskDefinitionError(message), ValueError)


def test_retry_on_an_importable_exception_class_is_accepted(temp_task):
    task = temp_task("startup.retry_on", retry_on=["json.JSONDecodeError", ConnectionError])
    assert task.options.retry_on == ("json.JSONDecodeError", ConnectionError)


def test_retry_on_a_class_defined_further_down_the_tasks_module_is_accepted():
    # The module defines its task above the exception class it retries on.
    from tests import retry_on_below

    try:
        assert registry.get("startup.retry_on_below").options.retry_on == ("tests.retry_on_below.Flaky",)
        assert not [message for message in run_checks() if message.id == "kinetik.E012"]
    finally:
        registry.unregister("startup.retry_on_below")
        sys.modules.pop(retry_on_below.__name__, None)


def test_manage_py_check_reports_a_retry_on_path_from_settings(temp_task):
    temp_task("startup.checked")
    with override_settings(KINETIK={"TASKS": {"startup.checked": {"retry_on": ["nonexistent.Error"]}}}):
        errors = [message for message in run_checks() if message.id == "kinetik.E012"]
    assert len(errors) == 1
    assert "'startup.checked'" in errors[0].msg and "'nonexistent.Error' cannot be imported" in errors[0].msg


def _no_arguments():
    return None


def _two_arguments(job, extra):
    return None


@pytest.mark.parametrize("action", [_no_arguments, _two_arguments], ids=["none", "two"])
def test_an_action_that_does_not_take_the_job_is_refused_saying_what_it_needs(action):
    message = _refused("def .*\\(job\\)", action=action)
    assert "called with one argument, the running job" in message


def test_the_chainable_form_refuses_such_an_action_too():
    with pytest.raises(kinetik.TaskDefinitionError, match="one argument, the running job"):
        kinetik.define("startup.chained").action(_no_arguments)
    assert "startup.chained" not in registry


def _job_and_defaults(job, extra=1, *rest, **more):
    return None


async def _async_action(job):
    return None


@pytest.mark.parametrize("action", [_job_and_defaults, _async_action, print], ids=["defaults", "async", "builtin"])
def test_actions_callable_with_the_job_are_accepted(temp_task, action):
    assert temp_task(f"startup.accepted.{action.__name__}", action).action is action


def test_an_unknown_option_is_refused_naming_the_known_ones():
    message = _refused("unknown option 'retires'", retires=3)
    assert "known options are tag, priority, timeout, retries" in message
