"""The shared-secret service principal (`X-API-Secret`)."""

import hmac

from django.conf import settings
from rest_framework import authentication, exceptions


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
