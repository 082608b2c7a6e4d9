"""kinetik's own URLs: ``path("kinetik/", include("django_kinetik.urls"))``.

- ``api/``: the JSON API (``api/stats``, ``api/jobs``, ``api/jobs/<id>``,
  ``api/jobs/<id>/log``, ``.../cancel``, ``.../retry``); ``GET api/`` is its
  OpenAPI document. A staff session with the model permissions, or a bearer
  token from ``KINETIK["API_TOKENS"]``.
- ``metrics``: Prometheus metrics (``pip install "django-kinetik[metrics]"``),
  with the same credentials as the API's reads.
- ``events/``: the live job feed as server-sent events, with the credentials
  of the API's reads (a bearer token, or staff with ``view_job``);
  ``?job=<id>``, ``?tag=<tag>`` and ``?kind=<kind>`` filter it.
"""

from django.urls import include, path

from .api import urls as api_urls
from .api.endpoint import Endpoint
from .api.metrics import metrics
from .feed.sse import events_view

app_name = "kinetik"

urlpatterns = [
    path("events/", events_view, name="events"),
    path("metrics", Endpoint(GET=(metrics, "view_job")), name="metrics"),
    path("api/", include(api_urls)),
]
