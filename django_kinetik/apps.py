from __future__ import annotations

from django.apps import AppConfig
from django.core.signals import setting_changed
from django.utils.module_loading import autodiscover_modules


class KinetikConfig(AppConfig):
    name = "django_kinetik"
    label = "django_kinetik"
    verbose_name = "Kinetik jobs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks  # noqa: F401 - registers the system checks
        from .conf import reset_settings
        from .tasks_backend import bridge

        setting_changed.connect(reset_settings, dispatch_uid="django_kinetik.reset_settings")
        bridge.connect()  # Django's task_finished for django.tasks jobs
        # Every installed app's tasks.py defines its tasks when imported.
        autodiscover_modules("tasks")
