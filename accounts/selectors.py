"""Reads of accounts shared by the API, the admin and the commands."""

from django.db.models import Q, QuerySet
from django.utils import timezone

from .models import ApiKey


def api_key_list(*, user) -> QuerySet[ApiKey]:
    """The user's own API keys, newest first."""
    return ApiKey.objects.filter(user=user).order_by("-created")


def api_key_active_count(*, user) -> int:
    """How many of the user's keys are usable: not revoked and not expired."""
    return (
        ApiKey.objects.filter(user=user, revoked=False)
        .filter(Q(expiry_date__isnull=True) | Q(expiry_date__gt=timezone.now()))
        .count()
    )
