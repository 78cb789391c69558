"""The custom user model and API keys."""

import uuid

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models
from rest_framework_api_key.models import AbstractAPIKey, BaseAPIKeyManager


class User(AbstractUser):
    """A person or client account; its UUID is the `user_id` jobs are filed under."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)

    class Meta(AbstractUser.Meta):
        swappable = "AUTH_USER_MODEL"


class ApiKeyManager(BaseAPIKeyManager):
    def get_usable_keys(self):
        return super().get_usable_keys().select_related("user")


class ApiKey(AbstractAPIKey):
    """A user's API key: only its prefix and a SHA-512 hash are stored.

    `scopes` (operation names such as `jobs:create`) narrow what the key may do
    to a subset of its user's permissions; an empty list means all of them.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    scopes = models.JSONField(default=list, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    objects = ApiKeyManager()

    class Meta(AbstractAPIKey.Meta):
        verbose_name = "API key"
        verbose_name_plural = "API keys"
        indexes = [models.Index(fields=["user", "-created"], name="apikey_user_created_idx")]

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"
