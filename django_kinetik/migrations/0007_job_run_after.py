from django.db import migrations, models
from django.db.models import F


def keep_the_run_after_of_waiting_django_tasks_jobs(apps, schema_editor):
    """django.tasks jobs enqueued for later and not yet run had their run_after only as run_at.

    Those are the delayed ones that never started (a job waiting to retry or
    snoozed has a run_at that is not its run_after); the others read back None,
    as they did before.
    """
    Job = apps.get_model("django_kinetik", "Job")
    waiting = Job.objects.using(schema_editor.connection.alias).filter(
        status="delayed", attempts=0, snoozes=0, run_at__gt=F("created_at")
    )
    waiting.exclude(task_backend="").update(run_after=F("run_at"))


class Migration(migrations.Migration):
    dependencies = [
        ("django_kinetik", "0006_cancel_snooze_and_holds"),
    ]

    operations = [
        migrations.AddField(
            model_name="job",
            name="run_after",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.RunPython(keep_the_run_after_of_waiting_django_tasks_jobs, migrations.RunPython.noop, elidable=True),
    ]
