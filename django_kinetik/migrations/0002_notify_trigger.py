"""PostgreSQL: new queued jobs wake idle workers through LISTEN/NOTIFY.

A statement-level trigger sends one NOTIFY per tag per INSERT statement
(create_many's bulk insert included), from inside the creating transaction:
PostgreSQL delivers it when that transaction commits, and never if it rolls
back. Other databases are left alone (their workers poll).
"""

from django.db import migrations

CHANNEL = "kinetik"

CREATE = f"""
CREATE OR REPLACE FUNCTION kinetik_notify_new_jobs() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('{CHANNEL}', tag) FROM (SELECT DISTINCT tag FROM new_jobs WHERE status = 'queued') AS tags;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER kinetik_job_inserted
AFTER INSERT ON django_kinetik_job
REFERENCING NEW TABLE AS new_jobs
FOR EACH STATEMENT EXECUTE FUNCTION kinetik_notify_new_jobs();
"""

DROP = """
DROP TRIGGER IF EXISTS kinetik_job_inserted ON django_kinetik_job;
DROP FUNCTION IF EXISTS kinetik_notify_new_jobs();
"""


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("django_kinetik", "0001_initial")]
    operations = [migrations.RunPython(create, drop, elidable=False)]
