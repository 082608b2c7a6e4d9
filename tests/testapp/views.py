"""A view of the kind tests/test_job_database.py drives: it writes to ``default`` and creates a job."""

from django.db import transaction
from django.http import HttpRequest, HttpResponse

import django_kinetik as kinetik

from .models import Effect


class _RolledBack(Exception):
    pass


def create_in_a_transaction(request: HttpRequest) -> HttpResponse:
    """``?way=on_commit`` (or ``create``), ``?rollback=1``: an order saved and its job created, in one atomic()."""
    number = int(request.GET["number"])
    try:
        with transaction.atomic():  # on default, where the project's own data lives
            Effect.objects.create(job_id=number)
            if request.GET.get("way") == "create":
                kinetik.create("test.echo", {"number": number})
            else:
                kinetik.create_on_commit("test.echo", {"number": number})
            if request.GET.get("rollback"):
                raise _RolledBack
    except _RolledBack:
        return HttpResponse("rolled back")
    return HttpResponse("saved")
