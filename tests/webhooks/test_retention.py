"""Retention of deliveries: the command and the periodic maintenance."""

import uuid
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from audit.models import AuditLog
from tests.credentials import webhook_subscription_for
from webhooks.actors import webhooks_cleanup
from webhooks.models import DeliveryStatus, WebhookAttempt, WebhookDelivery

from .conftest import echo_job


@pytest.fixture
def deliveries(user, receiver_url):
    """Deliveries 40 days old (succeeded, dead, still retrying) and one from today."""
    subscription = webhook_subscription_for(user, receiver_url)
    job = echo_job(user=user)
    made = {}
    for name, status, age in [
        ("old_succeeded", DeliveryStatus.SUCCEEDED, 40),
        ("old_dead", DeliveryStatus.DEAD, 40),
        ("old_retrying", DeliveryStatus.FAILED, 40),
        ("new_succeeded", DeliveryStatus.SUCCEEDED, 0),
    ]:
        delivery = WebhookDelivery.objects.create(
            subscription=subscription,
            job=job,
            event_id=uuid.uuid4(),
            event_type="job.completed",
            event_at=timezone.now(),
            url=receiver_url,
            payload={},
            status=status,
        )
        WebhookAttempt.objects.create(
            delivery=delivery,
            number=1,
            started_at=timezone.now(),
            duration_ms=1,
            url=receiver_url,
            succeeded=True,
            outcome="succeeded",
        )
        WebhookDelivery.objects.filter(pk=delivery.pk).update(created_at=timezone.now() - timedelta(days=age))
        made[name] = delivery
    return made


def test_cleanup_deletes_old_finished_deliveries_in_batches_with_their_attempts(deliveries):
    out = StringIO()

    call_command("cleanup_webhook_deliveries", "--older-than", "30d", "--batch-size", "1", stdout=out)

    assert set(WebhookDelivery.objects.values_list("pk", flat=True)) == {
        deliveries["old_retrying"].pk,
        deliveries["new_succeeded"].pk,
    }
    assert WebhookAttempt.objects.count() == 2
    assert "(1 so far)" in out.getvalue() and "Deleted 2 webhook deliveries" in out.getvalue()
    row = AuditLog.objects.get(action="command.cleanup_webhook_deliveries.purge")
    assert row.request_details["operation"]["deleted"] == 2


def test_cleanup_dry_run_deletes_nothing(deliveries):
    out = StringIO()

    call_command("cleanup_webhook_deliveries", "--older-than", "30d", "--dry-run", stdout=out)

    assert WebhookDelivery.objects.count() == 4
    assert "dry run: 2 webhook deliveries" in out.getvalue()


@pytest.mark.parametrize("age", ["30", "0d", "2w", "-1d"])
def test_cleanup_refuses_a_bad_age(age):
    with pytest.raises(CommandError, match="--older-than"):
        call_command("cleanup_webhook_deliveries", "--older-than", age)


def test_the_periodic_cleanup_follows_its_setting(settings, deliveries):
    settings.WEBHOOK_DELIVERY_RETENTION_DAYS = 0
    webhooks_cleanup()
    assert WebhookDelivery.objects.count() == 4

    settings.WEBHOOK_DELIVERY_RETENTION_DAYS = 30
    webhooks_cleanup()

    assert WebhookDelivery.objects.count() == 2
    assert AuditLog.objects.filter(action="webhooks.delivery.purge", principal="system:webhooks_cleanup").exists()
