"""``KinetikTaskBackend.check()``: a missing app, bad OPTIONS, unapplied migrations; OPTIONS that change."""

import pytest
from django.core.checks import Error, Warning
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.db import connection
from django.db.migrations.recorder import MigrationRecorder
from django.test import override_settings

from django_kinetik.models import Job
from django_kinetik.registry import registry
from django_kinetik.tasks_backend import framework
from tests.testapp import django_tasks as functions

pytestmark = pytest.mark.django_db(transaction=True)
BACKEND = "django_kinetik.tasks_backend.KinetikTaskBackend"


def backend_with(options):
    return {"default": {"BACKEND": BACKEND, "QUEUES": ["default", "mail"], "OPTIONS": options}}


@pytest.mark.parametrize(
    ("options", "says", "hint"),
    [
        ({"retries": "three"}, "retries must be an integer", "OPTIONS takes"),
        ({"tag": "mail"}, "cannot set tag", "@task(queue_name=..., priority=...)"),
        ({"rate_limit": "5/s"}, "cannot set rate_limit", 'KINETIK["TASKS"]'),
        (["retries", 3], "must be a dict", '{"retries": 3'),
    ],
)
def test_bad_options_are_a_check_message_with_a_hint_and_an_error_at_enqueue(options, says, hint):
    with override_settings(TASKS=backend_with(options)):
        (message,) = framework.task_backends["default"].check()
        assert isinstance(message, Error) and message.id == "kinetik.E014"
        assert says in message.msg and hint in message.hint
        with pytest.raises(ImproperlyConfigured, match=r"kinetik\.E014"):
            functions.add.enqueue(1, 2)
        with pytest.raises(SystemCheckError, match=r"kinetik\.E014"):
            call_command("check")
    assert not Job.objects.exists()


def test_good_options_and_a_migrated_database_have_nothing_to_report():
    backend = framework.task_backends["default"]
    assert list(backend.check()) == []
    assert list(backend.check(databases=[connection.alias])) == []


def test_a_project_without_the_app_is_told_to_add_it():
    apps = ["django.contrib.contenttypes", "django.contrib.auth"]
    with override_settings(INSTALLED_APPS=apps, TASKS=backend_with({})):
        backend = framework.task_backends["default"]
        (message,) = backend.check()
        assert isinstance(message, Error) and message.id == "kinetik.E013"
        assert "'django_kinetik' is not in INSTALLED_APPS" in message.msg
        assert "Add 'django_kinetik' to INSTALLED_APPS" in message.hint
        with pytest.raises(ImproperlyConfigured, match=r"kinetik\.E013"):
            backend.enqueue(functions.add, (1, 2), {})


@pytest.fixture
def latest_migration_unapplied():
    recorder = MigrationRecorder(connection)
    latest = max(name for app, name in recorder.applied_migrations() if app == "django_kinetik")
    recorder.record_unapplied("django_kinetik", latest)
    yield latest
    recorder.record_applied("django_kinetik", latest)


def test_unapplied_migrations_are_a_warning_when_the_database_is_checked(latest_migration_unapplied):
    backend = framework.task_backends["default"]
    assert list(backend.check()) == []  # no database asked for: none is touched
    (message,) = backend.check(databases=[connection.alias])
    assert isinstance(message, Warning) and message.id == "kinetik.W002"
    assert latest_migration_unapplied in message.msg
    assert message.hint == f"Run: python manage.py migrate django_kinetik --database {connection.alias}"


def test_migrate_still_runs_with_migrations_unapplied(latest_migration_unapplied, capsys):
    # migrate runs the database checks first: a warning, so it goes on (--fake: the tables are there).
    call_command("migrate", "django_kinetik", latest_migration_unapplied, fake=True, skip_checks=False)
    assert "kinetik.W002" in capsys.readouterr().err
    assert list(framework.task_backends["default"].check(databases=[connection.alias])) == []


def test_options_changed_with_override_settings_apply_to_a_task_already_used(run_worker):
    functions.flaky.enqueue(0)  # met (and registered) with the suite's OPTIONS: no retries
    run_worker()
    name = functions.flaky.module_path
    assert registry.get(name).effective_options().retries == 0
    with override_settings(TASKS=backend_with({"retries": 2, "retry_delay": 0})):
        assert registry.get(name).effective_options().retries == 2
        result = functions.flaky.enqueue(2)
        run_worker()
        result.refresh()
        assert (result.status, result.attempts) == (framework.TaskResultStatus.SUCCESSFUL, 3)
    assert registry.get(name).effective_options().retries == 0
