from django.contrib import admin
from django.urls import include, path

from tests.testapp.views import create_in_a_transaction

urlpatterns = [
    path("admin/", admin.site.urls),
    path("kinetik/", include("django_kinetik.urls")),
    path("orders/", create_in_a_transaction),
]
