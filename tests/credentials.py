"""Credentials for tests: JWTs (valid and broken), API keys, and a registry of secrets.

Every secret a test hands out is registered in `SECRETS`; at the end of the run
the captured logs are searched for them (see `tests/conftest.py`).
"""

import base64
import json
import uuid
from datetime import timedelta

import jwt
from django.utils import timezone
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from accounts.services import api_key_create

SECRETS: set[str] = set()


def remember(secret: str) -> str:
    SECRETS.add(secret)
    return secret


def bearer(token: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {remember(token)}"}


def jwt_for(user) -> dict:
    return bearer(str(AccessToken.for_user(user)))


def refresh_for(user) -> str:
    return remember(str(RefreshToken.for_user(user)))


def expired_jwt_for(user) -> dict:
    token = AccessToken.for_user(user)
    token.set_exp(from_time=timezone.now() - timedelta(hours=1), lifetime=timedelta(minutes=5))
    return bearer(str(token))


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _claims(user) -> dict:
    return dict(AccessToken.for_user(user).payload)


def alg_none_jwt_for(user) -> dict:
    """A token claiming to be `user` with no signature at all (`alg: none`)."""
    return bearer(f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(_claims(user))}.")


def foreign_key_jwt_for(user) -> dict:
    """A well-formed token for `user` signed with a key jobsite does not hold."""
    return bearer(jwt.encode(_claims(user), "not-the-signing-key-" + uuid.uuid4().hex, algorithm="HS256"))


def api_key_for(user, *, scopes=None, expires_at=None, revoked=False, header="Authorization") -> dict:
    api_key, key = api_key_create(user=user, name="test key", scopes=scopes or [], expires_at=expires_at)
    remember(key)
    if revoked:
        api_key.revoked = True
        api_key.save()
    if header == "Authorization":
        return {"HTTP_AUTHORIZATION": f"Api-Key {key}"}
    return {"HTTP_X_API_KEY": key}


def expired_api_key_for(user) -> dict:
    headers = api_key_for(user, expires_at=timezone.now() + timedelta(seconds=30))
    from accounts.models import ApiKey

    ApiKey.objects.filter(user=user).update(expiry_date=timezone.now() - timedelta(seconds=1))
    return headers


def webhook_subscription_for(owner, url: str, events: list[str] | None = None, **options):
    """A subscription created through the service; its secret is registered for the log scan."""
    from webhooks.services import webhook_subscription_create

    subscription, secret = webhook_subscription_create(
        owner=owner, url=url, events=events or ["job.completed"], **options
    )
    subscription.plain_secret = remember(secret)
    return subscription
