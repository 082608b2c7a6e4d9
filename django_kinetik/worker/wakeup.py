"""Wake-ups: an idle worker starts a new job within milliseconds, not an interval.

On PostgreSQL a thread holds its own connection LISTENing on the ``kinetik``
channel; the insert trigger (migration 0002) sends the new jobs' tags when the
creating transaction commits, and the listener wakes the worker's loop if it
serves one of them. The ``--interval`` poll stays as the safety net (and is all
SQLite and MySQL get). A listener that loses its connection reconnects with
backoff; in between, the poll carries on.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

from django.db import DatabaseError, connections

logger = logging.getLogger("django_kinetik.worker")

#: the NOTIFY channel; the trigger in migrations/0002_notify_trigger.py uses the same name
CHANNEL = "kinetik"


class PostgresListener:
    """LISTENs for new jobs of ``tags`` and sets ``wake`` when one arrives."""

    def __init__(self, alias: str, tags: Iterable[str], wake: threading.Event) -> None:
        self.alias = alias
        self.tags = set(tags)
        self.wake = wake
        self.ready = threading.Event()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kinetik-listener", daemon=True)

    @classmethod
    def available(cls, alias: str) -> bool:
        return connections[alias].vendor == "postgresql"

    def start(self) -> None:
        self._thread.start()

    def _connect(self):  # type: ignore[no-untyped-def]
        import psycopg

        params = connections[self.alias].get_connection_params()
        params.pop("cursor_factory", None)
        params.pop("context", None)
        connection = psycopg.connect(**params, autocommit=True)
        connection.execute(f"LISTEN {CHANNEL}")
        return connection

    def _run(self) -> None:
        pause = 0.2
        while not self._stopped.is_set():
            try:
                with self._connect() as connection:
                    self.ready.set()
                    pause = 0.2
                    while not self._stopped.is_set():
                        for notice in connection.notifies(timeout=0.5):
                            if notice.payload in self.tags:
                                self.wake.set()
                            elif self._stopped.is_set():
                                break  # stop()'s own notification
            except Exception as error:
                if self._stopped.is_set():
                    return
                logger.warning("Wake-up listener lost its connection (%s); reconnecting in %.1fs.", error, pause)
                self._stopped.wait(pause)
                pause = min(pause * 2, 5.0)

    def stop(self) -> None:
        """Ask the thread to end, without waiting: a stopping worker's shutdown
        timeout must not grow by the listener's poll (the thread is a daemon)."""
        self._stopped.set()
        # A notification no worker serves ends the thread's wait now, not at its
        # next poll: a worker's run() returns up to half a second sooner.
        try:
            with connections[self.alias].cursor() as cursor:
                cursor.execute("SELECT pg_notify(%s, '')", [CHANNEL])
        except DatabaseError:
            pass  # the database is away: the poll ends the wait instead

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)
