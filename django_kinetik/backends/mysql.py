"""MySQL and MariaDB: the portable backend, with named locks where the others have constraints.

MySQL can neither ``UPDATE ... RETURNING`` nor update a table it selects from
in a subquery, so claims and transitions lock the rows (``SELECT ... FOR
UPDATE SKIP LOCKED``) and update them in one transaction (the ORM backend's
way). It also ignores partial indexes, so the "one live job per unique key"
constraint does not exist there: creating a unique job serialises on a named
lock instead, and the purge takes turns the same way.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from django.db import connections

from ..models import Job
from . import statements
from .orm import OrmBackend

#: MySQL's lock names are at most 64 characters
_MAX_LOCK_NAME = 64


class MySQLBackend(OrmBackend):
    supports_skip_locked = True
    supports_partial_unique = False

    def insert_unique(self, job: Job) -> Job | None:
        """The look and the insert under a named lock on the key.

        Inside a caller's longer transaction, another process may not yet see
        the new job when the lock is released, so there uniqueness holds among
        committed jobs.
        """
        name = f"kinetik:{job.unique_key}"[:_MAX_LOCK_NAME]
        with connections[self.alias].cursor() as cursor:
            cursor.execute(statements.MYSQL_LOCK, [name])
            try:
                existing = self.live_holder(job.unique_key)  # type: ignore[arg-type]
                if existing is not None:
                    return existing
                job.save(using=self.alias, force_insert=True)
                return None
            finally:
                cursor.execute(statements.MYSQL_UNLOCK, [name])

    @contextlib.contextmanager
    def exclusively(self, name: str) -> Iterator[bool]:  # type: ignore[override]
        connection = connections[self.alias]
        with connection.cursor() as cursor:
            cursor.execute(statements.MYSQL_TRY_LOCK, [name[:_MAX_LOCK_NAME]])
            locked = cursor.fetchone()[0] == 1
        try:
            yield locked
        finally:
            if locked:
                with connection.cursor() as cursor:
                    cursor.execute(statements.MYSQL_UNLOCK, [name[:_MAX_LOCK_NAME]])
