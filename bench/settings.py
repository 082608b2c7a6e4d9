"""Settings for the benchmarks; ``KINETIK_BENCH_DB`` is ``sqlite`` or ``postgres``."""

import os
import tempfile
from pathlib import Path

SECRET_KEY = "bench-only"
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django_kinetik",
    "bench.benchapp",
]
# The admin, for bench/admin_list.py.
ROOT_URLCONF = "bench.urls"
ALLOWED_HOSTS = ["testserver"]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
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

if os.environ.get("KINETIK_BENCH_DB", "sqlite") == "postgres":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": os.environ.get("KINETIK_BENCH_PG_NAME", "kinetik_bench"),
            "USER": os.environ.get("PGUSER", "postgres"),
            "HOST": os.environ.get("PGHOST", "127.0.0.1"),
            "PORT": os.environ.get("PGPORT", "5432"),
        }
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(Path(tempfile.gettempdir()) / "kinetik-bench.sqlite3"),
            # What the README recommends for SQLite with several processes.
            "OPTIONS": {
                "timeout": 20,
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    }

KINETIK = {"INTERVAL": os.environ.get("KINETIK_BENCH_INTERVAL", "1s")}
# bench/throughput.py --pgbouncer MODE: every connection through a PgBouncer in that pool mode
# (started as the tests start theirs); --listen-direct: kinetik's LISTEN connections go around it.
_POOLER = os.environ.get("KINETIK_BENCH_PGBOUNCER", "")
if _POOLER and DATABASES["default"]["ENGINE"].endswith("postgresql"):
    from tests import pgbouncer

    DATABASES["default"]["PORT"] = str(pgbouncer.ensure_running(_POOLER, "bench"))
    DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = _POOLER == "transaction"
    if os.environ.get("KINETIK_BENCH_LISTEN_DIRECT"):
        KINETIK["LISTEN_DATABASE"] = {"PORT": os.environ.get("PGPORT", "5432")}
# bench/bigtable.py and bench/soak_vacuum.py: how long finished jobs are kept (the purge deletes the rest).
if os.environ.get("KINETIK_BENCH_PURGE_AFTER"):
    KINETIK["PURGE_AFTER"] = os.environ["KINETIK_BENCH_PURGE_AFTER"]
# bench/throughput.py --redis: the fast path, under a prefix of its own.
if os.environ.get("KINETIK_BENCH_REDIS"):
    KINETIK["REDIS"] = os.environ["KINETIK_BENCH_REDIS"]
    KINETIK["REDIS_PREFIX"] = "kinetik-bench"
# bench/throughput.py --django-tasks: jobs enqueued through Django's Tasks framework.
if os.environ.get("KINETIK_BENCH_DJANGO_TASKS"):
    TASKS = {"default": {"BACKEND": "django_kinetik.tasks_backend.KinetikTaskBackend", "QUEUES": ["bench"]}}
