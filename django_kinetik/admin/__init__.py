"""The Django admin as django_kinetik's UI (registered on Django's default site)."""

from . import jobs, tags, workers  # noqa: F401 - importing registers the model admins
