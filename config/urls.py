from django.contrib import admin
from django.urls import path

from todolists.ui.health import health_view, process_health_view
from todolists.ui.metrics import metrics_view

urlpatterns = [
    path("admin/", admin.site.urls),  # the TODO-list dashboard is its index (todolists/ui/site.py)
    path("health/", health_view, name="health"),
    path("health/process/", process_health_view, name="health_process"),
    path("metrics", metrics_view, name="metrics"),
]
