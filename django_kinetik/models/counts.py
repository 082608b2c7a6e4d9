"""Finished jobs counted as they finish, so the stats never count the finished rows themselves.

A table of millions of finished jobs makes ``SELECT status, count(*)`` a scan of
all of them (seconds), and the API's ``stats`` and the Prometheus scrape ask for
it every few seconds. On PostgreSQL, triggers on the job table (migration
0008) keep :class:`JobCount` rows instead: each statement that moves jobs into
or out of a finished status, or deletes finished ones, adds what it changed
to the rows of their ``(task, tag, status)``, in one upsert per statement. Live jobs are few and their partial indexes
find them, so they are still counted row by row.

Each database connection writes only the rows of its own ``shard`` (its
backend's process id): two workers settling jobs of the same task never wait
for each other's counter row, and no two transactions can lock counter rows in
opposite orders (no deadlock). A count is the sum over the shards. The purge
folds the rows of connections that have gone into shard 0, so the table keeps
a few rows per task, tag, status and live connection.

Other databases leave this table empty and count the job rows (see
``backends/counts.py``).
"""

from __future__ import annotations

from django.db import models

#: the shard the purge folds the rows of closed connections into (no backend has process id 0)
FOLDED = 0


class JobCount(models.Model):
    """A share of the finished jobs of one task, tag and status (PostgreSQL; summed over ``shard``)."""

    #: the PostgreSQL backend process id of the connection that wrote it, or :data:`FOLDED`
    shard = models.IntegerField()
    task = models.CharField(max_length=200)
    tag = models.CharField(max_length=100)
    status = models.CharField(max_length=10)
    #: may be negative: a connection that deletes or retries jobs another one finished
    count = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["shard", "task", "tag", "status"], name="kinetik_count_key"),
        ]

    def __str__(self) -> str:
        return f"{self.task} / {self.tag} / {self.status}: {self.count:+d} (shard {self.shard})"
