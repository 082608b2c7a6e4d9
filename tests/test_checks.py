import pytest
from django.conf import settings
from django.core.checks import run_checks
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.test import override_settings

from django_kinetik.conf import get_settings


def ours(message):
    """kinetik's messages, but the warning of a run behind a transaction pooler (test_pgbouncer.py checks that)."""
    return message.id.startswith("kinetik.") and not (settings.POOLER and message.id == "kinetik.W004")


def kinetik_messages():
    return {message.id: message.msg for message in run_checks(tags=["kinetik"]) if ours(message)}


@pytest.mark.parametrize(
    ("setting", "check_id", "text"),
    [
        (["not", "a", "dict"], "kinetik.E001", "must be a dict"),
        ({"INTERVALL": "1s"}, "kinetik.E002", "unknown key 'INTERVALL'"),
        ({"LEASE": "a while"}, "kinetik.E003", "KINETIK[\"LEASE\"] 'a while' is not a duration"),
        ({"INTERVAL": "-1s"}, "kinetik.E003", "cannot be negative"),
        ({"LEASE": "10ms"}, "kinetik.E003", "too short"),
        ({"MIDDLEWARE": "one.path"}, "kinetik.E004", "must be a list of dotted paths"),
        ({"DATABASE": "reporting"}, "kinetik.E005", "not in DATABASES"),
        ({"TASKS": {"test.echo": {"retries": -1}}}, "kinetik.E006", "retries cannot be negative"),
        ({"TASKS": {"test.echo": {"timeout": "soon"}}}, "kinetik.E006", "'soon' is not a duration"),
        ({"MIDDLEWARE": ["no.such.Middleware"]}, "kinetik.E007", "cannot be imported"),
        ({"TASKS": {"no.such.task": {"retries": 1}}}, "kinetik.W001", "no task has that name"),
        ({"REDIS": "sessions"}, "kinetik.E009", "neither a redis:// URL nor a cache alias"),
        ({"REDIS": "default"}, "kinetik.E009", "whose backend is not django-redis"),
        ({"REDIS_PREFIX": "my project"}, "kinetik.E004", "a non-empty string without spaces"),
    ],
)
def test_check_names_each_bad_setting(setting, check_id, text):
    with override_settings(KINETIK=setting):
        messages = kinetik_messages()
    assert check_id in messages
    assert text in messages[check_id]


def test_a_valid_configuration_has_no_messages():
    with override_settings(
        KINETIK={
            "INTERVAL": "2s",
            "LEASE": "1m",
            "TASKS": {"test.echo": {"retries": 2}},
            "MIDDLEWARE": ["django_kinetik.middleware.TimingMiddleware"],
        }
    ):
        assert kinetik_messages() == {}
        assert get_settings().lease == 60


def test_reading_an_invalid_configuration_raises_improperly_configured():
    with override_settings(KINETIK={"LEASE": "a while", "BOGUS": 1}):
        with pytest.raises(ImproperlyConfigured, match=r"kinetik.E002.*and 1 more; run manage.py check"):
            get_settings()


@pytest.mark.django_db
def test_manage_py_check_reports_the_error(capsys):
    from django.core.management.base import SystemCheckError

    with override_settings(KINETIK={"INTERVAL": "soonish"}), pytest.raises(SystemCheckError) as error:
        call_command("check")
    assert "kinetik.E003" in str(error.value)


@override_settings(
    CACHES={"redis": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": "redis://127.0.0.1:6379/15"}},
    KINETIK={"REDIS": "redis", "REDIS_PREFIX": "shop"},
)
def test_a_django_redis_cache_alias_is_a_valid_fast_path():
    assert "kinetik.E009" not in kinetik_messages()
    assert (get_settings().redis, get_settings().redis_prefix) == ("redis", "shop")


def test_options_for_a_django_tasks_function_by_module_path_are_not_a_stray_task(settings):
    from django_kinetik.checks import check_settings

    settings.KINETIK = {"TASKS": {"tests.testapp.django_tasks.flaky": {"retries": 2}, "tests.nothing": {}}}
    assert [message.msg for message in check_settings() if ours(message)] == [
        """KINETIK["TASKS"] has options for 'tests.nothing', but no task has that name."""
    ]
