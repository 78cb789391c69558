"""Health endpoints for load balancers, orchestrators and operators.

`/health` is liveness (the process serves; it asks nothing else), `/health/db`
and `/health/queue` check one dependency each, and `/health/ready` whether the
deployment can take and run jobs now. Anyone may ask whether the service is up: the answer is `{"status": "ok"}`
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


def is_operator(request) -> bool:
    """Tell whether the caller is an operator: the service principal, or a user with
    `jobs.view_all_jobs` (staff, in an admin session) whose key, if any, covers it."""
    if is_service(request.user):
        return True
    if not (request.user and request.user.is_authenticated):
        return False
    if isinstance(request.successful_authenticator, SessionAuthentication) and not request.user.is_staff:
        return False
    return principal_has_perm(request, DETAIL_PERMISSION)


def may_see_detail(request) -> bool:
    """Tell whether the caller may see the health detail (see the module docstring)."""
    return settings.HEALTH_DETAIL_PUBLIC or is_operator(request)


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


class ReadinessView(HealthView):
    """200 when jobs submitted now would run: the database and the broker answer, a live
    worker consumes each queue, and the outbox is not backing up; 503 otherwise.

    The outbox backs up when more than READY_OUTBOX_BACKLOG_MAX jobs stay
    pending past JOB_OUTBOX_RESEND_SECONDS (the broker does not take them),
    or as many job events someone listens to wait undispatched past
    JOB_EVENT_DISPATCH_GRACE_SECONDS. Operators see each check's finding.
    """

    def get(self, request):
        from dramatiq.errors import BrokerConnectionError

        from jobs import selectors

        from .broker.depth import broker_queue_depths
        from .observability.collectors import declared_queues

        checks: dict[str, dict] = {}
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
                cursor.fetchone()
            consumed = {queue for worker in selectors.live_workers().only("queues") for queue in worker.queues or ()}
            backlog = selectors.outbox_backlog()
        except DatabaseError as exc:
            logger.warning("Readiness: the database did not answer: %s", exc)
            return self.answer(False, {"checks": {"database": {"ok": False, "error": str(exc)}}})
        checks["database"] = {"ok": True}
        try:
            broker_queue_depths()
            checks["broker"] = {"ok": True}
        except BrokerConnectionError as exc:
            logger.warning("Readiness: the broker did not answer: %s", exc)
            checks["broker"] = {"ok": False, "error": str(exc)}
        unserved = [queue for queue in declared_queues() if queue not in consumed]
        checks["workers"] = {"ok": not unserved, "queues_without_workers": unserved}
        limit = settings.READY_OUTBOX_BACKLOG_MAX
        checks["outbox"] = {"ok": max(backlog.values()) <= limit, **backlog, "limit": limit}
        return self.answer(all(check["ok"] for check in checks.values()), {"checks": checks})


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
ready = ReadinessView.as_view()
