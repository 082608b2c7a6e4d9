"""kinetik's own URLs: ``path("kinetik/", include("django_kinetik.urls"))``.

- ``events/``: the live job feed as server-sent events (staff only);
  ``?job=<id>``, ``?tag=<tag>`` and ``?kind=<kind>`` filter it.
"""

from django.urls import path

from .feed.sse import events_view

app_name = "kinetik"

urlpatterns = [
    path("events/", events_view, name="events"),
]
