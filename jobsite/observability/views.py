"""`/metrics`: every process's metrics in Prometheus's text format, for operators and scrapers.

Who may read it: everyone when `METRICS_PUBLIC` is on; otherwise a scraper
presenting one of the `METRICS_TOKEN` tokens as `Authorization: Bearer
<token>` (Prometheus's `authorization` setting), or an operator as for the
health detail (the service principal; a JWT, API key or admin session of a
user with `jobs.view_all_jobs`). Anonymous callers get a 401, other callers a
403, in the API's error shape; wrong credentials a 401. Scrapers are not rate
limited; callers presenting other credentials are, as on the API.

With `PROMETHEUS_MULTIPROC_DIR` the answer adds up the files of every process
that writes there (this web server's workers, the Dramatiq worker processes,
the scheduler); without it, the serving process's own counts. The gauges are
read now, from the broker and the database (see :mod:`.collectors`).
"""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import HttpResponse
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from rest_framework import authentication
from rest_framework.permissions import BasePermission
from rest_framework.renderers import JSONRenderer
from rest_framework.views import APIView

from jobsite.api.views import ThrottledFirstMixin
from jobsite.health import CredentialedCallerThrottle, is_operator

from . import metrics
from .collectors import ScrapeTimeCollector


class MetricsScraper:
    """A caller holding a scrape token: it may read `/metrics` and nothing else."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    is_service = False
    pk = None
    id = None
    username = "metrics-scraper"

    def __str__(self):
        return self.username

    def has_perm(self, perm, obj=None):
        return False


SCRAPER = MetricsScraper()


class MetricsTokenAuthentication(authentication.BaseAuthentication):
    """Authenticate `Authorization: Bearer <token>` against `METRICS_TOKEN`, in constant time.

    Any other bearer token is left to the next authenticator (a JWT), which refuses what it cannot read.
    """

    def authenticate(self, request):
        scheme, _, supplied = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not settings.METRICS_TOKENS:
            return None
        supplied_bytes = supplied.strip().encode()
        # Every token is compared, so the time taken does not tell which one nearly matched.
        matches = [hmac.compare_digest(supplied_bytes, token.encode()) for token in settings.METRICS_TOKENS]
        return (SCRAPER, None) if any(matches) else None

    def authenticate_header(self, request):
        return 'Bearer realm="metrics"'


class MayReadMetrics(BasePermission):
    message = "Reading the metrics needs a scrape token or an operator's credentials."

    def has_permission(self, request, view):
        return settings.METRICS_PUBLIC or request.user is SCRAPER or is_operator(request)


class ScraperExemptThrottle(CredentialedCallerThrottle):
    """Scrapers are never limited; other callers presenting credentials are, as on the API."""

    def buckets(self, request):
        if request.user is SCRAPER:
            return []
        return super().buckets(request)


def exposition_registry() -> CollectorRegistry:
    """A registry of everything `/metrics` shows: every process's metrics, then the scrape-time gauges."""
    from prometheus_client import multiprocess

    registry = CollectorRegistry(auto_describe=False)
    if metrics.MULTIPROCESS_DIR:
        multiprocess.MultiProcessCollector(registry, path=metrics.MULTIPROCESS_DIR)
    else:
        registry.register(_InProcess())
    registry.register(ScrapeTimeCollector())
    return registry


class _InProcess:
    """This process's own metrics (no multiprocess directory)."""

    def collect(self):
        return REGISTRY.collect()


class MetricsView(ThrottledFirstMixin, APIView):
    """Prometheus text exposition of jobsite's metrics."""

    authentication_classes = [MetricsTokenAuthentication, *APIView.authentication_classes]
    permission_classes = [MayReadMetrics]
    throttle_classes = [ScraperExemptThrottle]
    renderer_classes = [JSONRenderer]  # errors; the metrics themselves are plain text
    schema = None

    def get(self, request):
        return HttpResponse(generate_latest(exposition_registry()), content_type=CONTENT_TYPE_LATEST)


metrics_view = MetricsView.as_view()
