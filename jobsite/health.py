"""Health endpoints for load balancers, orchestrators and operators.

Anyone may ask whether the service is up: the answer is `{"status": "ok"}`
(200) or `{"status": "unavailable"}` (503), nothing more. The detail (database
vendor, queue depths, throughput, live workers, the error that made a check
fail) names hosts, processes and internals, so it is added only for an
operator: a staff user with `jobs.view_all_jobs` logged in to the admin, the
service principal (`X-API-Secret`), or a JWT or API key whose user has
`jobs.view_all_jobs` (and a key whose scopes cover it); or for everyone when
`HEALTH_DETAIL_PUBLIC` is on. Probes send no credentials and are never
throttled; a caller who sends credentials is authenticated and limited as on
the API (wrong credentials are a 401).
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, connection
from django.utils import timezone
from rest_framework import status
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from .api.authentication import is_service
from .api.permissions import principal_has_perm
from .api.throttling import PrincipalRateThrottle
from .api.views import ThrottledFirstMixin

logger = logging.getLogger(__name__)

DETAIL_PERMISSION = "jobs.view_all_jobs"
_CREDENTIAL_HEADERS = ("Authorization", "X-API-Key", "X-API-Secret")


class CredentialedCallerThrottle(PrincipalRateThrottle):
    """Limit callers who present credentials as the API does; probes without any go unlimited."""

    def buckets(self, request):
        if not any(header in request.headers for header in _CREDENTIAL_HEADERS):
            return []
        return super().buckets(request)


def may_see_detail(request) -> bool:
    """Tell whether the caller may see the health detail (see the module docstring)."""
    if settings.HEALTH_DETAIL_PUBLIC or is_service(request.user):
        return True
    if not (request.user and request.user.is_authenticated):
        return False
    if isinstance(request.successful_authenticator, SessionAuthentication) and not request.user.is_staff:
        return False
    return principal_has_perm(request, DETAIL_PERMISSION)


class HealthView(ThrottledFirstMixin, APIView):
    """Base of the health endpoints: JSON, open to all, detail for operators."""

    permission_classes = [AllowAny]
    throttle_classes = [CredentialedCallerThrottle]
    renderer_classes = [JSONRenderer]
    schema = None

    def answer(self, ok: bool, detail: dict | None = None) -> Response:
        body = {"status": "ok" if ok else "unavailable"}
        if detail and may_see_detail(self.request):
            body.update(detail)
        return Response(body, status=status.HTTP_200_OK if ok else status.HTTP_503_SERVICE_UNAVAILABLE)


class LivenessView(HealthView):
    """The process is up and serving."""

    def get(self, request):
        return self.answer(True)


class DatabaseHealthView(HealthView):
    """200 when the database answers a query, 503 when it does not."""

    def get(self, request):
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
                cursor.fetchone()
        except DatabaseError as exc:
            logger.warning("Database health check failed: %s", exc)
            return self.answer(False, {"database": connection.vendor, "error": str(exc)})
        return self.answer(True, {"database": connection.vendor})


class QueueHealthView(HealthView):
    """200 when the broker answers, 503 when it does not; operators also get depths, throughput and workers."""

    def get(self, request):
        from dramatiq.errors import BrokerConnectionError

        from .broker.depth import broker_queue_depths

        try:
            depths = broker_queue_depths()
        except BrokerConnectionError as exc:
            logger.warning("Broker health check failed: %s", exc)
            return self.answer(False, {"broker": "unreachable", "error": str(exc)})
        if not may_see_detail(request):
            return self.answer(True)
        return self.answer(True, {"queues": depths, **_queue_activity()})


def _queue_activity() -> dict:
    from jobs import selectors

    now = timezone.now()
    return {
        "processed": {
            "last_minute": selectors.jobs_finished_since(now - timedelta(minutes=1)),
            "last_hour": selectors.jobs_finished_since(now - timedelta(hours=1)),
        },
        "workers": [
            {"id": w.worker_id, "queues": w.queues, "last_seen_at": w.last_seen_at.isoformat()}
            for w in selectors.live_workers(now=now)
        ],
    }


liveness = LivenessView.as_view()
database = DatabaseHealthView.as_view()
queue = QueueHealthView.as_view()
