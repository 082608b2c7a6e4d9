"""PostgreSQL: autovacuum looks at the queue's tables after a number of dead rows, not a share of the table.

PostgreSQL's default waits until a fifth of a table is dead: at 5 million
kept jobs, a million dead row versions, which every claim has to step over in
the partial claim index (bench/bigtable.py: a claim went from 1.1 to 1.5 ms
with 350,000 dead versions and no vacuum in sight, while a small table was
vacuumed every minute). A job leaves about three dead versions in its life
(claimed, settled, purged), so the job table is vacuumed once 1% of it plus
5,000 rows are dead, and re-analyzed at 2% (the claim's plan depends on
fresh statistics, docs/claiming.md); the runs table, which only the purge
leaves dead rows in, at 5%. A DBA's own settings for these tables are
replaced; ``ALTER TABLE ... RESET (...)`` or SET again afterwards to change them.
"""

from django.db import migrations

TUNE = """
ALTER TABLE django_kinetik_job SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 5000,
                                    autovacuum_analyze_scale_factor = 0.02);
ALTER TABLE django_kinetik_jobrun SET (autovacuum_vacuum_scale_factor = 0.05);
"""
UNTUNE = """
ALTER TABLE django_kinetik_job RESET (autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold,
                                      autovacuum_analyze_scale_factor);
ALTER TABLE django_kinetik_jobrun RESET (autovacuum_vacuum_scale_factor);
"""


def tune(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(TUNE)


def untune(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(UNTUNE)


class Migration(migrations.Migration):
    dependencies = [("django_kinetik", "0008_job_counts")]
    operations = [migrations.RunPython(tune, untune, elidable=False)]
