"""Retention: deleting old finished deliveries (with their attempts), in batches."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.services import audit_record

from .models import DeliveryStatus, WebhookDelivery

FINISHED = [DeliveryStatus.SUCCEEDED, DeliveryStatus.DEAD]


def webhook_deliveries_purge(*, cutoff: datetime, batch_size: int = 1000, dry_run: bool = False) -> Iterator[int]:
    """Delete succeeded and dead deliveries created before `cutoff`, yielding each batch's count.

    Deliveries still pending or retrying are kept whatever their age. With
    `dry_run`, nothing is deleted and the one yielded count is what would be.
    """
    old = WebhookDelivery.objects.filter(created_at__lt=cutoff, status__in=FINISHED).order_by("created_at")
    if dry_run:
        yield old.count()
        return
    while True:
        ids = list(old.values_list("pk", flat=True)[:batch_size])
        if not ids:
            return
        with transaction.atomic():
            WebhookDelivery.objects.filter(pk__in=ids).delete()
        yield len(ids)


def webhook_deliveries_purge_expired() -> int:
    """The periodic retention: deliveries older than WEBHOOK_DELIVERY_RETENTION_DAYS; one audit row."""
    cutoff = timezone.now() - timedelta(days=settings.WEBHOOK_DELIVERY_RETENTION_DAYS)
    deleted = sum(webhook_deliveries_purge(cutoff=cutoff))
    if deleted:
        with transaction.atomic():
            audit_record(
                app="webhooks",
                entity="delivery",
                verb="purge",
                details={"deleted": deleted, "cutoff": cutoff.isoformat()},
            )
    return deleted
