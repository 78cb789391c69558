"""Reads of accounts shared by the API, the admin and the commands."""

from django.db.models import QuerySet

from .models import ApiKey


def api_key_list(*, user) -> QuerySet[ApiKey]:
    """The user's own API keys, newest first."""
    return ApiKey.objects.filter(user=user).order_by("-created")
