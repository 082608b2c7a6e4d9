"""How long the feed's threads keep an idle connection, and when they let go of them all.

A worker publishes and listens all day, so its feed threads keep their
connections for :data:`WORKER_KEEP_IDLE` seconds between uses (a reconnect
per batch would cost more than the batch). Any other process, a web server
or a test run, uses the feed now and then: there a thread closes its
connection and ends once it has had nothing to do for :data:`KEEP_IDLE`
seconds. Long enough that a web process answering waits back to back keeps
one connection (a PostgreSQL connection per request would cost the server a
process each time, and the view ~3 ms); short enough that an idle web
process, or a test suite between its tests, holds nothing it is not using.

And whenever Django opens a connection without a database (it does so only
to create or drop one: a test run's set-up and teardown), the feed first
sends what it has buffered and closes everything (see
:func:`~django_kinetik.feed.release_before_database_admin`), so a
``DROP DATABASE`` never finds a kinetik connection in its way.
"""

from __future__ import annotations

#: a worker's feed threads keep an idle connection this long
WORKER_KEEP_IDLE = 30.0
#: any other process's, this long
KEEP_IDLE = 1.0

_keep_idle = KEEP_IDLE


def keep_idle() -> float:
    """Seconds a feed thread of this process keeps an idle connection."""
    return _keep_idle


def keep_idle_connections(seconds: float = WORKER_KEEP_IDLE) -> None:
    """This process is a worker: keep the feed's connections between uses."""
    global _keep_idle
    _keep_idle = seconds
