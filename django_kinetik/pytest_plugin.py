"""pytest fixtures for projects that use django_kinetik (loaded through the ``pytest11`` entry point).

- ``kinetik_jobs``: the jobs a test creates, captured, not run (see :func:`django_kinetik.testing.capture_jobs`).
- ``kinetik_eager``: eager mode for one test: every job runs as it is created.

Both need pytest-django (they use its ``db`` and ``settings`` fixtures). This
module imports nothing from Django when pytest loads it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture
def kinetik_jobs(db: None) -> Iterator[Any]:
    """The jobs created during the test, captured without running; ``kinetik_jobs.run()`` runs them."""
    from .testing import capture_jobs

    with capture_jobs() as jobs:
        yield jobs


@pytest.fixture
def kinetik_eager(db: None, settings: Any) -> None:
    """Every job created during the test runs at once, in the test's process (``KINETIK["EAGER"]``)."""
    settings.KINETIK = {**getattr(settings, "KINETIK", {}), "EAGER": True}
