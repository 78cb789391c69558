from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from jobs.api.seeds.urls import starter_patterns, task_patterns

from . import health

handler404 = "jobsite.api.errors.api_not_found"
handler500 = "jobsite.api.errors.api_server_error"

urlpatterns = [
    path("health", health.liveness, name="health"),
    path("health/db", health.database, name="health-db"),
    path("health/queue", health.queue, name="health-queue"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("jobsite.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="redoc"),
    path("api-auth/", include("rest_framework.urls")),
    # The seed services' unprefixed paths: the task API (seed 003) and the starter job API (seed 004).
    *task_patterns,
    *starter_patterns,
    path("docs", RedirectView.as_view(pattern_name="swagger-ui"), name="docs"),
]
