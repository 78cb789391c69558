"""Filters of the subscription and delivery lists, shared by the API and the admin."""

import django_filters
from rest_framework.exceptions import ValidationError

from .models import DeliveryStatus, WebhookDelivery, WebhookEventType, WebhookSubscription


def _values(param: str, value: str, valid: list[str]) -> list[str]:
    """Comma-separated values, each one of `valid`; a 400 listing them otherwise."""
    parts = [part.strip() for part in value.split(",") if part.strip()]
    for part in parts:
        if part not in valid:
            raise ValidationError(
                {param: [f"Invalid value {part!r}. Valid values: {', '.join(valid)}."], "valid_values": valid}
            )
    return parts


class SubscriptionFilter(django_filters.FilterSet):
    is_active = django_filters.BooleanFilter()

    class Meta:
        model = WebhookSubscription
        fields = ["is_active"]


class DeliveryFilter(django_filters.FilterSet):
    status = django_filters.CharFilter(
        method="filter_status", help_text=f"One or more of {', '.join(DeliveryStatus.values)}, comma-separated."
    )
    event_type = django_filters.CharFilter(
        method="filter_event_type", help_text=f"One or more of {', '.join(WebhookEventType.values)}, comma-separated."
    )
    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")
    subscription = django_filters.UUIDFilter(field_name="subscription_id")
    job = django_filters.UUIDFilter(field_name="job_id")

    class Meta:
        model = WebhookDelivery
        fields = ["status", "event_type", "created_after", "created_before", "subscription", "job"]

    def filter_status(self, queryset, name, value):
        return queryset.filter(status__in=_values("status", value, DeliveryStatus.values))

    def filter_event_type(self, queryset, name, value):
        return queryset.filter(event_type__in=_values("event_type", value, WebhookEventType.values))
