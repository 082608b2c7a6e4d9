"""A ``django.tasks`` function: Django's own Tasks API, run by the same kinetik workers.

(On Django 5.2 the API comes from the django-tasks backport; ``dev.py demo`` installs it.)
"""

import django

if django.VERSION >= (6, 0):
    from django.tasks import task
else:
    from django_tasks import task


@task(queue_name="images", priority=5)
def make_thumbnail(image, size=128):
    """Pretend to resize an image."""
    return {"thumbnail": f"{image.rsplit('.', 1)[0]}-{size}px.png"}
