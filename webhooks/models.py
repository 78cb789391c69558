"""Webhook subscriptions, their deliveries and every attempt at one.

The tables keep seed 002's names and columns (`webhook_subscriptions`:
id, user_id, url, events, secret, is_active, created_at; `webhook_deliveries`:
id, subscription_id, event_type, payload, status, attempts, last_error,
created_at, delivered_at) and add what signing, retries and observability need.
"""

import uuid

from django.conf import settings
from django.db import models

from jobs.models import JobEventType


class WebhookEventType(models.TextChoices):
    JOB_CREATED = JobEventType.CREATED.value, "Job created"
    JOB_STARTED = JobEventType.STARTED.value, "Job started"
    JOB_RETRYING = JobEventType.RETRYING.value, "Job retrying"
    JOB_COMPLETED = JobEventType.COMPLETED.value, "Job completed"
    JOB_FAILED = JobEventType.FAILED.value, "Job failed"
    JOB_CANCELLED = JobEventType.CANCELLED.value, "Job cancelled"
    TEST = "webhook.test", "Test"


# What a subscription may ask for: every job event (`webhook.test` is sent on request only).
SUBSCRIBABLE_EVENTS = [e.value for e in JobEventType]


class WebhookSubscription(models.Model):
    """An endpoint that receives the events it lists, signed with its secret.

    It receives its owner's jobs' events; with `all_jobs` (operators and the
    service principal only) every job's. The service principal's subscriptions
    have no owner and always receive every job's events. `secret` and
    `previous_secret` hold Fernet ciphertext (see webhooks.secrets), never the
    secret itself.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="webhook_subscriptions",
        db_index=False,  # the indexes below lead with it
        help_text="The owner; empty for the service principal's subscriptions.",
    )
    url = models.URLField(max_length=2000)
    events = models.JSONField(default=list, help_text="Event types it receives, such as job.completed.")
    description = models.CharField(max_length=255, blank=True, default="")
    secret = models.TextField(help_text="The signing secret, encrypted.")
    previous_secret = models.TextField(blank=True, default="", help_text="The secret before the last rotation.")
    previous_secret_expires_at = models.DateTimeField(
        null=True, blank=True, help_text="Until then deliveries are signed with the previous secret too."
    )
    all_jobs = models.BooleanField(default=False, help_text="Receive every job's events, not only its owner's.")
    is_active = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=255, blank=True, default="")
    failing_since = models.DateTimeField(
        null=True, blank=True, help_text="Start of the current run of failed attempts (none since a success)."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "webhook_subscriptions"
        ordering = ["-created_at", "-id"]
        indexes = [
            # The job path asks "does anyone listen?" on every transition (jobs.events.notify_sql):
            # by the job's owner, and among the subscriptions to every job's events.
            models.Index(fields=["user"], name="webhook_sub_active_user_idx", condition=models.Q(is_active=True)),
            models.Index(
                fields=["created_at"],
                name="webhook_sub_active_all_idx",
                condition=models.Q(is_active=True, all_jobs=True),
            ),
            models.Index(fields=["user", "-created_at"], name="webhook_sub_user_created_idx"),
        ]
        permissions = [
            ("manage_all_webhooks", "Can see and manage every subscription and delivery, and subscribe to every job"),
        ]

    def __str__(self):
        return f"{self.url} ({self.id})"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"  # no attempt made yet
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"  # the last attempt failed; another is scheduled
    DEAD = "dead", "Dead"  # the last attempt failed and none is left


class WebhookDelivery(models.Model):
    """One event on its way to one endpoint: a subscription, or the job's own `webhook_url`.

    `event_id` is the `webhook-id` every attempt carries (the job event's id),
    so a receiver can recognise a repeat. The payload is built once, when the
    delivery is created, and every attempt sends it unchanged.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    subscription = models.ForeignKey(
        WebhookSubscription,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="deliveries",
        help_text="Empty for the job's own callback (its webhook_url).",
    )
    job = models.ForeignKey(
        "jobs.Job", null=True, blank=True, on_delete=models.CASCADE, related_name="webhook_deliveries", db_index=False
    )
    event_id = models.UUIDField(help_text="The webhook-id header: the same for every attempt.")
    event_type = models.CharField(max_length=32, choices=WebhookEventType.choices)
    event_at = models.DateTimeField(help_text="When the change happened (the payload's timestamp).")
    url = models.URLField(max_length=2000, help_text="Where the last attempt went.")
    payload = models.JSONField()
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(default=1)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    locked_until = models.DateTimeField(null=True, blank=True, help_text="An attempt is under way until then.")
    last_response_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    response_excerpt = models.TextField(blank=True, default="")
    duration_ms = models.PositiveIntegerField(null=True, blank=True, help_text="Of the last attempt.")
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "webhook_deliveries"
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "webhook deliveries"
        indexes = [
            models.Index(fields=["subscription", "-created_at", "-id"], name="webhook_dlv_sub_created_idx"),
            models.Index(fields=["job", "created_at"], name="webhook_dlv_job_idx"),
            models.Index(fields=["-created_at", "-id"], name="webhook_dlv_created_idx"),
            models.Index(fields=["status", "-created_at"], name="webhook_dlv_status_idx"),
            # The sweep's question: which attempts are due and not under way?
            models.Index(
                fields=["next_attempt_at"],
                name="webhook_dlv_due_idx",
                condition=models.Q(status__in=["pending", "failed"]),
            ),
        ]
        constraints = [
            # One delivery per event and endpoint, however often the event is dispatched.
            models.UniqueConstraint(
                fields=["event_id", "subscription"],
                condition=models.Q(subscription__isnull=False),
                name="webhook_dlv_one_per_subscription",
            ),
            models.UniqueConstraint(
                fields=["event_id"], condition=models.Q(subscription__isnull=True), name="webhook_dlv_one_callback"
            ),
        ]
        permissions = [("redeliver_webhookdelivery", "Can redeliver webhook deliveries")]

    def __str__(self):
        return f"{self.event_type} {self.event_id} -> {self.url} ({self.status})"

    @property
    def is_callback(self) -> bool:
        """Whether it goes to the job's own webhook_url rather than to a subscription."""
        return self.subscription_id is None


class FailedWebhookDelivery(WebhookDelivery):
    """Deliveries retrying or dead: the admin's view of what needs an operator."""

    class Meta:
        proxy = True
        verbose_name = "failed webhook delivery"
        verbose_name_plural = "failed webhook deliveries"


class WebhookAttempt(models.Model):
    """One HTTP request of a delivery and how the receiver answered."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField()
    url = models.URLField(max_length=2000)
    succeeded = models.BooleanField()
    outcome = models.CharField(
        max_length=32, help_text="succeeded, http_error, timeout, connection_error, refused or disabled."
    )
    response_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    response_excerpt = models.TextField(blank=True, default="")

    class Meta:
        db_table = "webhook_attempts"
        ordering = ["delivery", "number"]
        constraints = [models.UniqueConstraint(fields=["delivery", "number"], name="webhook_attempt_unique_number")]

    def __str__(self):
        return f"attempt {self.number} of {self.delivery_id}: {self.outcome}"
