from django.contrib import admin
from django.urls import include, path, re_path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerSplitView

from jobs.api.seeds.urls import starter_patterns, task_patterns

from . import health
from .api import schema  # noqa: F401  the OpenAPI descriptions of the API-key and shared-secret schemes
from .observability.views import metrics_view

urlpatterns = [
    # With or without the trailing slash: probes are configured both ways.
    re_path(r"^health/?$", health.liveness, name="health"),
    re_path(r"^health/db/?$", health.database, name="health-db"),
    re_path(r"^health/queue/?$", health.queue, name="health-queue"),
    re_path(r"^health/ready/?$", health.ready, name="health-ready"),
    re_path(r"^metrics/?$", metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("jobsite.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves Swagger UI's initialising script as a file of its own, as the CSP requires.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="redoc"),
    path("api-auth/", include("rest_framework.urls")),
    # The seed services' unprefixed paths: the task API (seed 003) and the starter job API (seed 004).
    *task_patterns,
    *starter_patterns,
    path("docs", RedirectView.as_view(pattern_name="swagger-ui"), name="docs"),
]
