"""Dramatiq entry points for webhooks, on their own `webhooks` queue: thin, they call services."""

import dramatiq
from django.conf import settings
from django.db import DatabaseError
from dramatiq_crontab import interval

from audit.context import AuditContext, audit_context

from . import retention, services

QUEUE = "webhooks"
# A worker takes messages in actor priority order (lower first): after urgent and high jobs, before the rest.
PRIORITY = 25


def _database_unavailable(retries: int, exception: Exception) -> bool:
    """Redeliver a message that hit a database error (a restart); anything else is recorded, not retried."""
    return isinstance(exception, DatabaseError) and retries < 20


def _attempt_time_limit_ms() -> int:
    return int((settings.WEBHOOK_CONNECT_TIMEOUT_SECONDS + settings.WEBHOOK_READ_TIMEOUT_SECONDS + 30) * 1000)


@dramatiq.actor(
    actor_name="webhooks_dispatch",
    queue_name=QUEUE,
    priority=PRIORITY,
    retry_when=_database_unavailable,
    min_backoff=1000,
    max_backoff=30_000,
)
def webhooks_dispatch(event_ids: list[str]) -> None:
    """Turn committed job events into deliveries (one per receiver) and make or send their first attempts."""
    with audit_context(AuditContext(source="system", name="webhooks")):
        services.webhook_events_dispatch(event_ids=event_ids, attempt_first=True)


@dramatiq.actor(
    actor_name="webhooks_deliver",
    queue_name=QUEUE,
    priority=PRIORITY,
    retry_when=_database_unavailable,
    min_backoff=1000,
    max_backoff=30_000,
    time_limit=_attempt_time_limit_ms(),
)
def webhooks_deliver(delivery_id: str) -> None:
    """Make a delivery's due attempt; a failure schedules the next one with a delayed message."""
    with audit_context(AuditContext(source="system", name="webhooks")):
        services.webhook_delivery_attempt(delivery_id=delivery_id)


@interval(seconds=settings.WEBHOOK_SWEEP_INTERVAL_SECONDS)
@dramatiq.actor(actor_name="webhooks_sweep", queue_name="maintenance", max_retries=0, max_age=60_000)
def webhooks_sweep() -> None:
    """Dispatch events the broker never got and re-send overdue attempts (scheduled by `manage.py crontab`)."""
    with audit_context(AuditContext(source="system", name="webhooks")):
        services.webhook_outbox_resend()


@interval(seconds=3600)
@dramatiq.actor(actor_name="webhooks_cleanup", queue_name="maintenance", max_retries=0, max_age=600_000)
def webhooks_cleanup() -> None:
    """Delete finished deliveries older than WEBHOOK_DELIVERY_RETENTION_DAYS (0: keep them)."""
    if settings.WEBHOOK_DELIVERY_RETENTION_DAYS > 0:
        with audit_context(AuditContext(source="system", name="webhooks_cleanup")):
            retention.webhook_deliveries_purge_expired()
