"""Writes to accounts: API keys."""

from datetime import datetime

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from audit.services import audit_record

from . import selectors
from .models import ApiKey
from .scopes import SCOPES


class ApiKeyError(ValueError):
    """The API key request is invalid; `errors` maps each field to its messages."""

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__("; ".join(f"{k}: {', '.join(v)}" for k, v in errors.items()))
        self.errors = errors


class ApiKeyLimitReached(Exception):
    """The user already holds `API_KEYS_PER_USER_MAX` active keys."""

    def __init__(self, *, limit: int):
        super().__init__(f"A user may hold at most {limit} active API key(s); revoke one before creating another.")
        self.limit = limit


def api_key_create(*, user, name: str, scopes: list[str] | None = None, expires_at: datetime | None = None):
    """Create an API key for `user`; return the key row and the full key, which is never stored.

    Raises `ApiKeyError` for invalid fields and `ApiKeyLimitReached` when the
    user already holds `API_KEYS_PER_USER_MAX` unrevoked, unexpired keys.
    """
    scopes = list(dict.fromkeys(scopes or []))
    errors: dict[str, list[str]] = {}
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown:
        errors["scopes"] = [f"Unknown scope(s) {', '.join(unknown)}; valid scopes: {', '.join(SCOPES)}."]
    if expires_at is not None and expires_at <= timezone.now():
        errors["expires_at"] = ["Must be in the future."]
    if not name or len(name) > 50:
        errors["name"] = ["Required, at most 50 characters."]
    if errors:
        raise ApiKeyError(errors)
    limit = settings.API_KEYS_PER_USER_MAX
    with transaction.atomic():
        # The user's row is the lock that makes "count, then create" one step for concurrent requests.
        get_user_model().objects.select_for_update().only("pk").get(pk=user.pk)
        if selectors.api_key_active_count(user=user) >= limit:
            raise ApiKeyLimitReached(limit=limit)
        api_key, key = ApiKey.objects.create_key(user=user, name=name, scopes=scopes, expiry_date=expires_at)
        audit_record(
            app="accounts",
            entity="api_key",
            verb="create",
            resource_id=api_key.prefix,
            details={"user": user.get_username(), "name": name, "scopes": scopes},
        )
    return api_key, key


def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    """Revoke a key for good; revoking a revoked key changes nothing."""
    if not api_key.revoked:
        with transaction.atomic():
            api_key.revoked = True
            api_key.save(update_fields=["revoked"])
            audit_record(app="accounts", entity="api_key", verb="revoke", resource_id=api_key.prefix)
    return api_key
