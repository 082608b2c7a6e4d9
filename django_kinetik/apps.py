from __future__ import annotations

from django.apps import AppConfig
from django.core.signals import setting_changed
from django.db.backends.signals import connection_created
from django.utils.module_loading import autodiscover_modules


class KinetikConfig(AppConfig):
    name = "django_kinetik"
    label = "django_kinetik"
    verbose_name = "Kinetik jobs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The composition root: it may import every layer, and wires the seams
        # through which the lower ones reach the upper ones (docs/architecture.md).
        from . import (
            checks,  # noqa: F401 - registers the system checks
            feed,
            jobs,
            outage,
            services,
            waiting,
        )
        from .conf import django_tasks_enabled, reset_settings
        from .tasks_backend import bridge

        services.bind(
            services.Services(
                create=jobs.create,
                create_many=jobs.create_many,
                create_on_commit=jobs.create_on_commit,
                cancel=jobs.cancel_job,
                retry=jobs.retry_job,
                wait=waiting.wait_for,
                await_result=waiting.await_for,
            )
        )
        setting_changed.connect(reset_settings, dispatch_uid="django_kinetik.reset_settings")
        connection_created.connect(outage.note_connection, dispatch_uid="django_kinetik.outage")
        # A test run drops its database: the feed's own connections must be gone by then.
        connection_created.connect(feed.release_before_database_admin, dispatch_uid="django_kinetik.feed")
        bridge.connect()  # django.tasks: its jobs' definitions, and Django's task signals
        if django_tasks_enabled():
            # Importing the framework registers its system check, which runs the backend's check().
            from .tasks_backend import framework  # noqa: F401
        # Every installed app's tasks.py defines its tasks when imported.
        autodiscover_modules("tasks")
