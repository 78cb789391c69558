"""Health endpoints for load balancers and orchestrators (no authentication)."""

import logging

from django.db import DatabaseError, connection
from django.http import JsonResponse
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
