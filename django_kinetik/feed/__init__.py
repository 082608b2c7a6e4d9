"""Live events: what happens to jobs, as it happens, for anyone listening.

Workers (and the code that creates and cancels jobs) publish an event for
every step of a job's life: ``created``, ``started``, ``progress``, ``log``,
``retrying``, and its end, ``completed``, ``failed``, ``timeout`` or
``cancelled``. They travel through Redis pub/sub when ``KINETIK["REDIS"]`` is
set, else through PostgreSQL NOTIFY; SQLite and MySQL without Redis have no
feed (waits poll the row instead).

The feed is a convenience, never the record: an event can be lost (the
transport was down, a listener reconnected), so nothing that must happen
depends on one. ``job.wait()`` uses the feed to wake at once, and re-reads the
job's row every second anyway.

- :mod:`.event`: the :class:`~.event.Event` value and its wire format
- :mod:`.transport`: Redis and PostgreSQL, publishing and subscribing
- :mod:`.publishing`: the hooks the queue calls, batched off the hot path
- :mod:`.listener`: one subscriber connection per process, shared by every wait and stream
- :mod:`.stream`: ``kinetik.events()``
- :mod:`.sse`: the feed as server-sent events for browsers
- :mod:`.lifetime`: how long the feed's threads keep their connections
"""

from __future__ import annotations

from typing import Any

from django.db.backends.base.base import NO_DB_ALIAS


def available() -> bool:
    """Whether this configuration has a live feed (Redis, or PostgreSQL)."""
    from .transport import current

    return current() is not None


def close_all() -> None:
    """Publish what is waiting, then close every feed connection this process holds.

    For the end of a test session (a test database cannot be dropped while a
    connection to it is open) and for processes about to exit; anything used
    afterwards reconnects on demand.
    """
    from .listener import close_listeners
    from .publishing import close_publishers

    close_publishers()
    close_listeners()


def release_before_database_admin(sender: Any, connection: Any, **kwargs: Any) -> None:
    """``connection_created`` receiver: a connection with no database is about to create or drop one.

    Django opens those only to create or drop a database (a test run's
    set-up and teardown); a ``DROP DATABASE`` fails while any other
    connection to it is open, so the feed lets go of its own first.
    """
    if connection.alias == NO_DB_ALIAS:
        close_all()
