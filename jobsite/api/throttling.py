"""Rate limits per principal: API key, user, service, or anonymous client IP."""

from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle

from .authentication import is_service


class PrincipalRateThrottle(SimpleRateThrottle):
    """One bucket per caller, with the rate of the caller's kind from `THROTTLE_RATES`.

    Kinds: `key` (per API key), `user` (per JWT/session user), `service` (the
    shared-secret principal), `anon` (per client IP). Counts live in the
    default cache, which is Redis when `CACHE_URL` names one, so every web
    process shares them.
    """

    def __init__(self):
        # The rate depends on the request; it is chosen in allow_request.
        pass

    def principal(self, request) -> tuple[str, str]:
        from accounts.models import ApiKey

        if isinstance(request.auth, ApiKey):
            return "key", request.auth.prefix
        if is_service(request.user):
            return "service", "service"
        if request.user and request.user.is_authenticated:
            return "user", str(request.user.pk)
        return "anon", self.get_ident(request)

    def allow_request(self, request, view):
        self.scope, self.ident = self.principal(request)
        self.rate = settings.THROTTLE_RATES.get(self.scope)
        if not self.rate:
            return True
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.ident}


class LoginRateThrottle(SimpleRateThrottle):
    """Limit password logins per client IP (`THROTTLE_RATES["login"]`)."""

    scope = "login"

    def get_rate(self):
        return settings.THROTTLE_RATES.get(self.scope)

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}
