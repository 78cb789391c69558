"""Health endpoints for load balancers and orchestrators (no authentication)."""

import logging
from datetime import timedelta

from django.db import DatabaseError, connection
from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_GET

logger = logging.getLogger(__name__)


@require_GET
def liveness(request):
    """The process is up and serving."""
    return JsonResponse({"status": "ok"})


@require_GET
def database(request):
    """200 when the database answers a query, 503 when it does not."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as exc:
        logger.warning("Database health check failed: %s", exc)
        return JsonResponse({"status": "unavailable", "database": connection.vendor, "error": str(exc)}, status=503)
    return JsonResponse({"status": "ok", "database": connection.vendor})


@require_GET
def queue(request):
    """The broker's queues, recent throughput and live workers; 503 when the broker is unreachable."""
    from dramatiq.errors import BrokerConnectionError

    from jobs import selectors

    from .broker.depth import broker_queue_depths

    now = timezone.now()
    try:
        depths = broker_queue_depths()
    except BrokerConnectionError as exc:
        logger.warning("Broker health check failed: %s", exc)
        return JsonResponse({"status": "unavailable", "broker": "unreachable", "error": str(exc)}, status=503)
    return JsonResponse(
        {
            "status": "ok",
            "queues": depths,
            "processed": {
                "last_minute": selectors.jobs_finished_since(now - timedelta(minutes=1)),
                "last_hour": selectors.jobs_finished_since(now - timedelta(hours=1)),
            },
            "workers": [
                {"id": w.worker_id, "queues": w.queues, "last_seen_at": w.last_seen_at.isoformat()}
                for w in selectors.live_workers(now=now)
            ],
        }
    )
