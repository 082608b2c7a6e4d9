"""Jobs enqueued through django.tasks name their backend; each attempt records its exception class.

Both columns keep a database default, so rows written by code that predates
them (old processes during a rolling deploy) are still accepted.
"""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('django_kinetik', '0002_notify_trigger'),
    ]

    operations = [
        migrations.AddField(
            model_name='job',
            name='task_backend',
            field=models.CharField(blank=True, db_default='', default='', max_length=100),
        ),
        migrations.AddField(
            model_name='jobrun',
            name='exception',
            field=models.CharField(blank=True, db_default='', default='', max_length=255),
        ),
    ]
