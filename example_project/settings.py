"""Settings for the example project: SQLite, no other services needed."""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-project-not-for-production")
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_kinetik",
    "example_project.demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "example_project.urls"
WSGI_APPLICATION = "example_project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

DATABASES = {
    # SQLite by default; EXAMPLE_DATABASE=postgres or mysql runs the project
    # (and its test suite, `manage.py test`) on a local server instead.
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("EXAMPLE_DB", str(BASE_DIR / "example.sqlite3")),
        # Several processes (web, workers) share this file: WAL lets readers
        # and one writer work at once, IMMEDIATE transactions take the write
        # lock up front, and the timeout makes a writer wait instead of failing.
        "OPTIONS": {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
    }
}
if os.environ.get("EXAMPLE_DATABASE") == "postgres":
    DATABASES["default"] = {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ.get("EXAMPLE_DB", "kinetik_example"),
        "USER": os.environ.get("PGUSER", "postgres"),
        "HOST": os.environ.get("PGHOST", "127.0.0.1"),
        "PORT": os.environ.get("PGPORT", "5432"),
    }
elif os.environ.get("EXAMPLE_DATABASE") == "mysql":
    import pymysql  # pure Python, so nothing to compile: pip install PyMySQL

    pymysql.install_as_MySQLdb()
    DATABASES["default"] = {
        "ENGINE": "django.db.backends.mysql",
        "NAME": os.environ.get("EXAMPLE_DB", "kinetik_example"),
        "USER": "root",
        "HOST": "127.0.0.1",
        "PORT": "3306",
        "OPTIONS": {"charset": "utf8mb4"},
    }
KINETIK = {
    "INTERVAL": "200ms",
    "MIDDLEWARE": ["django_kinetik.middleware.TimingMiddleware"],
    "TASKS": {
        # Settings override the decorator's defaults (and create() overrides these).
        "demo.flaky": {"retry_delay": "1s"},
    },
    # EXAMPLE_REDIS=redis://127.0.0.1:6379/0 turns the Redis fast path on.
    "REDIS": os.environ.get("EXAMPLE_REDIS", ""),
}

# Django's Tasks framework (django.tasks) on kinetik: see demo/background.py.
TASKS = {
    "default": {
        "BACKEND": "django_kinetik.tasks_backend.KinetikTaskBackend",
        "QUEUES": ["default", "images"],
        "OPTIONS": {"retries": 2, "timeout": "1m"},
    }
}

USE_TZ = True
TIME_ZONE = "UTC"
STATIC_URL = "static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
