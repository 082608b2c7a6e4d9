"""Settings for the test suite.

``KINETIK_TEST_DB`` picks the database: ``sqlite`` (default), ``postgres`` or
``mysql``. Worker processes started by tests set ``KINETIK_TEST_WORKER_DB`` to
the test database's name so they use the same database as the test.

On PostgreSQL, ``KINETIK_TEST_PGBOUNCER=transaction`` or ``session`` puts a
PgBouncer in that mode between every connection and the server (see
``tests/pgbouncer.py``); in transaction mode, ``KINETIK_TEST_LISTEN_DIRECT=1``
gives kinetik's LISTEN connections the direct way (``KINETIK["LISTEN_DATABASE"]``),
and without it kinetik polls, as it does behind such a pooler by default.
"""

import os
import tempfile
from pathlib import Path
from typing import Any

SECRET_KEY = "tests-only"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_kinetik",
    "tests.testapp",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "tests.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
STATIC_URL = "static/"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

_ENGINE = os.environ.get("KINETIK_TEST_DB", "sqlite")
# Separate test databases per tox environment, so environments can run side by side.
_SUFFIX = "".join(c if c.isalnum() else "_" for c in os.environ.get("TOX_ENV_NAME", "local"))
TEST_SUFFIX = _SUFFIX
_WORKER_DB = os.environ.get("KINETIK_TEST_WORKER_DB")

if _ENGINE == "postgres":
    _test_name = f"test_kinetik_{_SUFFIX}"
    DATABASES: dict[str, dict[str, Any]] = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": _WORKER_DB or "postgres",
            "USER": os.environ.get("PGUSER", "postgres"),
            "PASSWORD": os.environ.get("PGPASSWORD", ""),
            "HOST": os.environ.get("PGHOST", "127.0.0.1"),
            "PORT": os.environ.get("PGPORT", "5432"),
            "TEST": {"NAME": _test_name},
        }
    }
elif _ENGINE == "mysql":
    import pymysql

    pymysql.install_as_MySQLdb()
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.mysql",
            "NAME": _WORKER_DB or "test",
            "USER": "root",
            "HOST": "127.0.0.1",
            "PORT": "3306",
            "TEST": {"NAME": f"test_kinetik_{_SUFFIX}"},
        }
    }
elif _ENGINE == "sqlite":
    # A file, not memory, so worker processes started by tests share it.
    _test_file = str(Path(tempfile.gettempdir()) / f"kinetik-test-{_SUFFIX}-{os.getuid()}.sqlite3")
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": _WORKER_DB or _test_file,
            "OPTIONS": {"timeout": 20},
            "TEST": {"NAME": _test_file},
        }
    }
else:
    raise RuntimeError(f"KINETIK_TEST_DB={_ENGINE!r}: use sqlite, postgres or mysql")

# KINETIK_TEST_JOBS_DB=separate: the jobs on a database of their own, "jobs" (tests/test_job_database.py).
JOBS_APART = os.environ.get("KINETIK_TEST_JOBS_DB") == "separate"
if JOBS_APART:
    _jobs_worker_db = os.environ.get("KINETIK_TEST_WORKER_JOBS_DB")
    _jobs = {**DATABASES["default"], "TEST": dict(DATABASES["default"].get("TEST", {}))}
    if _ENGINE == "sqlite":
        _jobs_file = _test_file.replace(".sqlite3", "-jobs.sqlite3")
        _jobs.update(NAME=_jobs_worker_db or _jobs_file, TEST={"NAME": _jobs_file})
    else:
        _jobs["TEST"]["NAME"] = f"{_jobs['TEST']['NAME']}_jobs"
        if _jobs_worker_db:
            _jobs["NAME"] = _jobs_worker_db
    DATABASES["jobs"] = _jobs
    DATABASE_ROUTERS = ["django_kinetik.routers.KinetikRouter"]

#: "", "transaction" or "session": a PgBouncer in between (PostgreSQL only)
POOLER = os.environ.get("KINETIK_TEST_PGBOUNCER", "") if _ENGINE == "postgres" else ""
if POOLER:
    from tests import pgbouncer

    DATABASES["default"]["PORT"] = str(pgbouncer.ensure_running(POOLER, _SUFFIX))
    # Django's sign of a transaction pooler; kinetik reads it too (backends/pooling.py).
    DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = POOLER == "transaction"
    if JOBS_APART:
        DATABASES["jobs"].update(PORT=DATABASES["default"]["PORT"], DISABLE_SERVER_SIDE_CURSORS=POOLER == "transaction")
# A worker process that a test reaches the database through a proxy of its own (tests/netcut.py).
if _ENGINE == "postgres" and os.environ.get("KINETIK_TEST_DB_PORT"):
    DATABASES["default"]["HOST"] = "127.0.0.1"
    DATABASES["default"]["PORT"] = os.environ["KINETIK_TEST_DB_PORT"]

KINETIK: dict[str, Any] = {
    "INTERVAL": "50ms",
    # Worker processes started by the fault tests use short leases to recover quickly.
    "LEASE": os.environ.get("KINETIK_TEST_LEASE", "10s"),
    "SHUTDOWN_TIMEOUT": "5s",
    "CANCEL_GRACE": os.environ.get("KINETIK_TEST_CANCEL_GRACE", "5s"),
}
if JOBS_APART:
    KINETIK["DATABASE"] = "jobs"

# Worker processes started by the Redis fault tests get the test's fast path this way.
if os.environ.get("KINETIK_TEST_REDIS"):
    KINETIK["REDIS"] = os.environ["KINETIK_TEST_REDIS"]
    KINETIK["REDIS_PREFIX"] = os.environ.get("KINETIK_TEST_REDIS_PREFIX", "kinetik-test")

# Django's Tasks framework (django.tasks on 6.0+, the django-tasks backport on 5.2)
# runs on kinetik; the suite's @task functions live in tests/testapp/django_tasks.py,
# which kinetik does not autodiscover (workers import it when they meet its jobs).
TASKS = {
    "default": {
        "BACKEND": "django_kinetik.tasks_backend.KinetikTaskBackend",
        "QUEUES": ["default", "mail"],
        "OPTIONS": {"retry_delay": "10ms"},
    }
}

if POOLER == "transaction" and os.environ.get("KINETIK_TEST_LISTEN_DIRECT"):
    KINETIK["LISTEN_DATABASE"] = {"PORT": os.environ.get("PGPORT", "5432")}
elif POOLER == "transaction":
    # Polling is what this run tests: the warning that says so would be every command's first lines.
    SILENCED_SYSTEM_CHECKS = ["kinetik.W004"]
