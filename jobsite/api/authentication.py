"""Who is calling: the service principal, API keys (JWT and sessions come from DRF/simplejwt)."""

import hmac
from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from rest_framework import authentication, exceptions

# A key's `last_used_at` is written at most this often, not on every request.
LAST_USED_RESOLUTION = timedelta(minutes=1)
# No credential of ours is longer; anything longer is refused before it is looked at.
MAX_CREDENTIAL_LENGTH = 512


class ServicePrincipal:
    """The trusted backend that holds `JOBSITE_API_SECRET`.

    It is not a database user: it acts on every job and may submit on behalf of
    any `user_id`.
    """

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    is_service = True
    pk = None
    id = None
    username = "service"

    def __str__(self):
        return "service"

    def has_perm(self, perm, obj=None):
        return True


SERVICE_PRINCIPAL = ServicePrincipal()


def is_service(user) -> bool:
    """Tell whether a request's user is the service principal."""
    return getattr(user, "is_service", False)


class ApiSecretAuthentication(authentication.BaseAuthentication):
    """Authenticate `X-API-Secret: <JOBSITE_API_SECRET>` in constant time."""

    header = "X-API-Secret"

    def authenticate(self, request):
        supplied = request.headers.get(self.header)
        if supplied is None:
            return None
        expected = settings.JOBSITE_API_SECRET
        if not expected or not hmac.compare_digest(supplied.encode(), expected.encode()):
            raise exceptions.AuthenticationFailed("Invalid API secret.")
        return (SERVICE_PRINCIPAL, None)

    def authenticate_header(self, request):
        return self.header


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """Authenticate `Authorization: Api-Key <key>` or `X-API-Key: <key>`.

    `request.auth` is the `ApiKey`, whose scopes the permission checks apply.
    """

    keyword = "Api-Key"

    def authenticate(self, request):
        key = self._key_from(request)
        if key is None:
            return None
        from accounts.models import ApiKey

        if not key or len(key) > MAX_CREDENTIAL_LENGTH or "." not in key:
            raise exceptions.AuthenticationFailed("Invalid API key.")
        try:
            api_key = ApiKey.objects.get_from_key(key)
        except ApiKey.DoesNotExist:
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.") from None
        if api_key.has_expired:
            raise exceptions.AuthenticationFailed("The API key has expired.")
        if not api_key.user.is_active:
            raise exceptions.AuthenticationFailed("The API key's user is inactive.")
        now = timezone.now()
        if api_key.last_used_at is None or now - api_key.last_used_at > LAST_USED_RESOLUTION:
            ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        return (api_key.user, api_key)

    def _key_from(self, request):
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme == self.keyword:
            return value.strip()
        return request.headers.get("X-API-Key")

    def authenticate_header(self, request):
        return self.keyword
