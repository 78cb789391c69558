"""Reads of subscriptions and deliveries shared by the API, the admin and the job page."""

from __future__ import annotations

from django.db.models import Prefetch, Q, QuerySet

from jobsite.api.authentication import is_service

from .models import WebhookAttempt, WebhookDelivery, WebhookSubscription


def can_manage_all_webhooks(user) -> bool:
    """The service principal and holders of `webhooks.manage_all_webhooks` (operators) see every subscription."""
    return is_service(user) or user.has_perm("webhooks.manage_all_webhooks")


def subscription_list(*, user) -> QuerySet[WebhookSubscription]:
    """Subscriptions visible to `user`: their own, or every one for operators and the service; newest first."""
    subscriptions = WebhookSubscription.objects.order_by("-created_at", "-id")
    if can_manage_all_webhooks(user):
        return subscriptions
    return subscriptions.filter(user_id=user.pk)


def _deliveries() -> QuerySet[WebhookDelivery]:
    attempts = Prefetch("attempt_log", queryset=WebhookAttempt.objects.order_by("number"))
    return WebhookDelivery.objects.order_by("-created_at", "-id").prefetch_related(attempts)


def delivery_list(*, user) -> QuerySet[WebhookDelivery]:
    """Deliveries visible to `user`: to their subscriptions and their jobs' own callbacks (all for operators)."""
    if can_manage_all_webhooks(user):
        return _deliveries()
    return _deliveries().filter(Q(subscription__user_id=user.pk) | Q(subscription__isnull=True, job__user_id=user.pk))


def deliveries_for_subscription(subscription: WebhookSubscription) -> QuerySet[WebhookDelivery]:
    """A subscription's deliveries, newest first, with their attempts."""
    return _deliveries().filter(subscription=subscription)


def deliveries_for_job(job_id, *, user=None) -> QuerySet[WebhookDelivery]:
    """Every delivery of one job's events, oldest first, with their attempts; only those `user` may see when given.

    The job page of the admin shows all of them (no `user`).
    """
    deliveries = delivery_list(user=user) if user is not None else _deliveries()
    return deliveries.filter(job_id=job_id).order_by("created_at", "event_at", "id")
