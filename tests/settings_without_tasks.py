"""The test settings of a project that defines no tasks yet (for the worker's start-up diagnostics)."""

from tests.settings import *  # noqa: F403

INSTALLED_APPS = [app for app in INSTALLED_APPS if app != "tests.testapp"]  # noqa: F405
ROOT_URLCONF = "tests.settings_without_tasks"
urlpatterns: list[object] = []
TASKS: dict[str, object] = {}
