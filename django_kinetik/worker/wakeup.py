"""Wake-ups: an idle worker starts a new job within milliseconds, not an interval.

- PostgreSQL: a thread holds its own connection LISTENing on the ``kinetik``
  channel; the insert trigger (migration 0002) and the lifecycle (jobs queued
  again) send the tags of new work when their transaction commits, and the
  listener wakes the worker's loop if it serves one of them.
- SQLite: a thread asks its own connection for ``PRAGMA data_version`` every
  few milliseconds, which changes whenever another connection (any process on
  this host) has committed to the database file: a look costs microseconds,
  and an idle worker sees a new job about :data:`SQLITE_EVERY` after its commit.
- With Redis, its blocking pop is the wake-up (``redisfeed.py``); MySQL polls.

The ``--interval`` poll stays as everyone's safety net. A listener that loses
its connection reconnects with backoff; in between, the poll carries on.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

from django.db import DatabaseError, connections

from ..backends import get_backend
from ..backends.base import Backend
from ..backends.postgresql import CHANNEL
from .threads import BackgroundThread

logger = logging.getLogger("django_kinetik.worker")

#: seconds between two looks at SQLite's data_version
SQLITE_EVERY = 0.005


class PostgresListener(BackgroundThread):
    """LISTENs for new jobs of ``tags`` and sets ``wake`` when one arrives."""

    name = "kinetik-listener"

    def __init__(self, alias: str, tags: Iterable[str], wake: threading.Event) -> None:
        super().__init__()
        self.alias = alias
        self.tags = set(tags)
        self.wake = wake
        self.ready = threading.Event()

    def _connect(self):  # type: ignore[no-untyped-def]
        return get_backend(self.alias).listening_connection("worker wake-ups", CHANNEL)  # type: ignore[attr-defined]

    def run(self) -> None:
        pause = 0.2
        while not self.stopping.is_set():
            try:
                with self._connect() as connection:
                    self.ready.set()
                    pause = 0.2
                    while not self.stopping.is_set():
                        for notice in connection.notifies(timeout=0.5):
                            if notice.payload in self.tags:
                                self.wake.set()
                            elif self.stopping.is_set():
                                break  # stop()'s own notification
            except Exception as error:
                if self.stopping.is_set():
                    return
                logger.warning("Wake-up listener lost its connection (%s); reconnecting in %.1fs.", error, pause)
                self.stopping.wait(pause)
                pause = min(pause * 2, 5.0)

    def interrupt(self) -> None:
        # A notification no worker serves ends the thread's wait now, not at its
        # next poll: a worker's run() returns up to half a second sooner.
        try:
            get_backend(self.alias).wake_workers({""})
        except DatabaseError:
            pass  # the database is away: the poll ends the wait instead


class CommitWatcher(BackgroundThread):
    """Sets ``wake`` when another connection commits to the database, while ``idle`` is set (SQLite)."""

    name = "kinetik-watcher"

    def __init__(self, backend: Backend, wake: threading.Event, idle: threading.Event) -> None:
        super().__init__()
        self.backend = backend
        self.wake = wake
        self.idle = idle
        self.ready = threading.Event()

    def run(self) -> None:
        look = self.backend.commit_counter()
        if look is None:
            return
        last = look()
        self.ready.set()
        while not self.stopping.wait(SQLITE_EVERY):
            try:
                now = look()
            except DatabaseError:
                connections.close_all()
                look = self.backend.commit_counter() or look
                continue
            if now != last:
                last = now
                if self.idle.is_set():
                    self.wake.set()


def listener_for(
    backend: Backend, tags: Iterable[str], wake: threading.Event, idle: threading.Event
) -> BackgroundThread | None:
    """The wake-up thread this database allows (None: polling only)."""
    if backend.supports_notify:
        return PostgresListener(backend.alias, tags, wake)
    if backend.supports_commit_watch:
        return CommitWatcher(backend, wake, idle)
    return None
