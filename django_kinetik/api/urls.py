"""The JSON API's URLs, included under ``api/`` by ``django_kinetik.urls``.

Each route is one :class:`.endpoint.Endpoint`: its methods, and the model
permission a staff session needs for each (a bearer token may do anything).
Every route here has its entry in the OpenAPI document (:mod:`.openapi`).
"""

from django.urls import path

from . import views
from .endpoint import Endpoint

urlpatterns = [
    path("", Endpoint(GET=(views.root, "view_job")), name="api-root"),
    path("stats", Endpoint(GET=(views.stats, "view_job")), name="api-stats"),
    path(
        "jobs",
        Endpoint(GET=(views.list_jobs, "view_job"), POST=(views.create_jobs, "add_job")),
        name="api-jobs",
    ),
    path(
        "jobs/<int:job_id>",
        Endpoint(GET=(views.show_job, "view_job"), DELETE=(views.delete_job, "delete_job")),
        name="api-job",
    ),
    path("jobs/<int:job_id>/log", Endpoint(GET=(views.job_log, "view_job")), name="api-job-log"),
    path("jobs/<int:job_id>/cancel", Endpoint(POST=(views.cancel_job, "cancel_job")), name="api-job-cancel"),
    path("jobs/<int:job_id>/retry", Endpoint(POST=(views.retry_job, "retry_job")), name="api-job-retry"),
    # Last: anything else under api/ is a JSON 404, not Django's HTML page.
    path("<path:rest>", views.not_found, name="api-not-found"),
]
