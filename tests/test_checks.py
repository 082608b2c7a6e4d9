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
        ({"REDIS": "redis+sentinel://10.0.0.1:26379"}, "kinetik.E009", "must end in /<service>[/<db>]"),
        ({"REDIS": "redis+sentinel://10.0.0.1:26379/main/zero"}, "kinetik.E009", "must be a number, not 'zero'"),
        ({"REDIS": "redis+sentinel://:hunter2@10.0.0.1:99999/main"}, "kinetik.E009", "from 1 to 65535"),
        ({"REDIS": "redis+sentinel://s1/main?timeout=1"}, "kinetik.E009", "unknown option 'timeout'"),
        ({"REDIS": "redis+cluster://10.0.0.1:7000"}, "kinetik.E018", "Redis Cluster is not supported"),
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


def test_a_bad_sentinel_url_is_quoted_without_its_password():
    with override_settings(KINETIK={"REDIS": "redis+sentinel://:hunter2@10.0.0.1/main/zero"}):
        message = kinetik_messages()["kinetik.E009"]
    assert "hunter2" not in message and ":***@10.0.0.1" in message


def test_a_sentinel_url_is_a_valid_fast_path_and_says_where_the_master_is_known():
    from django_kinetik.values.redis_location import SentinelLocation, parse_sentinel_url

    url = "redis+sentinel://:secret@10.0.0.1:26380,10.0.0.2,[::1]:26381/main/3?sentinel_password=s3"
    with override_settings(KINETIK={"REDIS": url}):
        assert kinetik_messages() == {}
        assert get_settings().redis == url
    assert parse_sentinel_url(url) == SentinelLocation(
        sentinels=(("10.0.0.1", 26380), ("10.0.0.2", 26379), ("::1", 26381)),
        service="main",
        db=3,
        password="secret",
        sentinel_password="s3",
    )
    assert parse_sentinel_url("rediss+sentinel://s1/main").ssl


@override_settings(
    CACHES={
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "cluster": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": "redis://10.0.0.1:7000",
            "OPTIONS": {"REDIS_CLIENT_CLASS": "redis.cluster.RedisCluster"},
        },
    },
    KINETIK={"REDIS": "cluster"},
)
def test_a_django_redis_cluster_alias_is_refused():
    messages = kinetik_messages()
    assert "names the cache 'cluster', a Redis Cluster client" in messages["kinetik.E018"]


def test_a_redis_cluster_node_is_refused_when_the_fast_path_connects(settings, tmp_path):
    """A real node started with cluster mode on (a redis:// URL cannot say it is one)."""
    import shutil
    import socket
    import subprocess
    import time

    from django_kinetik.fastpath import connection

    port = 0
    while not 1024 < port < 50000:  # a free port, with room for the cluster bus's (port + 10000)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
    server = shutil.which("redis-server") or "/usr/bin/redis-server"
    node = subprocess.Popen(
        [server, *("--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes"), "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as attempt:
                if attempt.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.02)
        settings.KINETIK = {**settings.KINETIK, "REDIS": f"redis://127.0.0.1:{port}/0"}
        connection.forget_clients()
        with pytest.raises(ImproperlyConfigured, match="points at a Redis Cluster node"):
            connection.redis_client()
    finally:
        connection.forget_clients()
        node.kill()
        node.wait()
