"""Finished jobs counted as they finish (PostgreSQL), so ``stats`` and metrics never scan them.

Triggers on the job table keep :class:`~django_kinetik.models.JobCount` rows
per ``(task, tag, status)`` of the finished statuses. An UPDATE statement's
trigger reads the statement's old and new rows (transition tables) and
writes one aggregated upsert: -1 for each row that was finished, +1 for
each that is, so a settle of 100 jobs is one upsert per task, tag and
status, and a claim (no finished row on either side) writes nothing. (A
row trigger, tried first, re-updated the same counter row once per job: in
one statement of 50,000 rows each update walked the versions the earlier
ones left, 21 s instead of 1.) A DELETE statement's trigger takes the
finished rows off the same way; an INSERT of a finished job (rare: one
cancelled at creation) adds one per row; TRUNCATE empties the counts. Each
connection writes the rows of its own shard, its ``pg_backend_pid()``: no
two connections share a counter row, so settles never queue behind one
another (see ``models/counts.py``).

The existing finished jobs are counted once, here, after the triggers exist;
CREATE TRIGGER's lock holds off other writers of the job table until this
migration commits, so none is counted twice or missed (5 million finished
jobs took 3.4 s on a 2-core machine, during which workers wait). Other databases leave the
table empty and count job rows.
"""

from django.db import migrations, models

FINISHED = "('completed', 'failed', 'timeout', 'cancelled')"
COUNTS = "django_kinetik_jobcount"
UPSERT = f"ON CONFLICT (shard, task, tag, status) DO UPDATE SET count = {COUNTS}.count + EXCLUDED.count"

CREATE = f"""
CREATE OR REPLACE FUNCTION kinetik_count_inserted() RETURNS trigger AS $$
BEGIN
    INSERT INTO {COUNTS} (shard, task, tag, status, count)
    VALUES (pg_backend_pid(), NEW.task, NEW.tag, NEW.status, 1) {UPSERT};
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION kinetik_count_updated() RETURNS trigger AS $$
BEGIN
    -- -1 for each row that was finished, +1 for each that is: a row whose status,
    -- task and tag stay the same comes to 0, and no row is looked up by id.
    INSERT INTO {COUNTS} (shard, task, tag, status, count)
    SELECT pg_backend_pid(), task, tag, status, sum(n) FROM (
        SELECT task, tag, status, -1 AS n FROM old_jobs WHERE status IN {FINISHED}
        UNION ALL
        SELECT task, tag, status, 1 AS n FROM new_jobs WHERE status IN {FINISHED}
    ) AS changes
    GROUP BY task, tag, status HAVING sum(n) <> 0 ORDER BY task, tag, status
    {UPSERT};
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION kinetik_uncount_deleted() RETURNS trigger AS $$
BEGIN
    INSERT INTO {COUNTS} (shard, task, tag, status, count)
    SELECT pg_backend_pid(), task, tag, status, -count(*) FROM deleted_jobs
    WHERE status IN {FINISHED} GROUP BY task, tag, status ORDER BY task, tag, status
    {UPSERT};
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION kinetik_uncount_all() RETURNS trigger AS $$
BEGIN
    DELETE FROM {COUNTS};
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER kinetik_job_counted_insert
AFTER INSERT ON django_kinetik_job
FOR EACH ROW WHEN (NEW.status IN {FINISHED})
EXECUTE FUNCTION kinetik_count_inserted();

CREATE TRIGGER kinetik_job_counted_update
AFTER UPDATE ON django_kinetik_job
REFERENCING OLD TABLE AS old_jobs NEW TABLE AS new_jobs
FOR EACH STATEMENT EXECUTE FUNCTION kinetik_count_updated();

CREATE TRIGGER kinetik_job_counted_delete
AFTER DELETE ON django_kinetik_job
REFERENCING OLD TABLE AS deleted_jobs
FOR EACH STATEMENT EXECUTE FUNCTION kinetik_uncount_deleted();

CREATE TRIGGER kinetik_job_counted_truncate
AFTER TRUNCATE ON django_kinetik_job
FOR EACH STATEMENT EXECUTE FUNCTION kinetik_uncount_all();

INSERT INTO {COUNTS} (shard, task, tag, status, count)
SELECT 0, task, tag, status, count(*) FROM django_kinetik_job
WHERE status IN {FINISHED} GROUP BY task, tag, status;
"""

DROP = """
DROP TRIGGER IF EXISTS kinetik_job_counted_insert ON django_kinetik_job;
DROP TRIGGER IF EXISTS kinetik_job_counted_update ON django_kinetik_job;
DROP TRIGGER IF EXISTS kinetik_job_counted_delete ON django_kinetik_job;
DROP TRIGGER IF EXISTS kinetik_job_counted_truncate ON django_kinetik_job;
DROP FUNCTION IF EXISTS kinetik_count_inserted();
DROP FUNCTION IF EXISTS kinetik_count_updated();
DROP FUNCTION IF EXISTS kinetik_uncount_deleted();
DROP FUNCTION IF EXISTS kinetik_uncount_all();
"""


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [
        ("django_kinetik", "0007_job_run_after"),
    ]

    operations = [
        migrations.CreateModel(
            name="JobCount",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("shard", models.IntegerField()),
                ("task", models.CharField(max_length=200)),
                ("tag", models.CharField(max_length=100)),
                ("status", models.CharField(max_length=10)),
                ("count", models.BigIntegerField(default=0)),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(fields=("shard", "task", "tag", "status"), name="kinetik_count_key")
                ],
            },
        ),
        migrations.RunPython(create, drop, elidable=False),
    ]
