"""A django.tasks function for ``bench/throughput.py --django-tasks``."""

import django

if django.VERSION >= (6, 0):
    from django.tasks import task
else:
    from django_tasks import task


@task(queue_name="bench")
def noop():
    return None
