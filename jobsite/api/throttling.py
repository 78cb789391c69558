"""Rate limits per principal (API key and its user, user, service, anonymous client IP) and per login IP.

Each bucket is a fixed-window counter in the default cache, counted with the
cache's atomic `add` and `incr`: however many requests arrive at once, across
threads and processes sharing the cache, exactly `N` get through an `N/period`
rate in each window. (DRF's `SimpleRateThrottle` reads, appends and writes
back a list of timestamps, so parallel requests overwrite each other's counts.)
A fixed window lets a caller spend one window's allowance at its end and the
next one's at the start of the next window; the rates are set with that in mind.
"""

import logging
import math
import time

from django.conf import settings
from django.core.cache import cache
from rest_framework.throttling import BaseThrottle

from .authentication import is_service

logger = logging.getLogger(__name__)

_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# A window's counter outlives the window by this much, so that a request that
# computed its window just before the end still finds the counter to count on.
_COUNTER_GRACE_SECONDS = 5


def parse_rate(rate: str) -> tuple[int, int]:
    """Parse DRF's rate syntax, `N/second|minute|hour|day` (only the period's first letter counts)."""
    num, period = rate.split("/")
    return int(num), _PERIODS[period.strip()[0]]


def rate_window_hit(bucket: str, rate: str) -> float | None:
    """Count one request against `bucket`; None when it is within `rate`, else the seconds until the window ends."""
    limit, duration = parse_rate(rate)
    now = time.time()
    window_start = now - now % duration
    remaining = window_start + duration - now
    key = f"throttle_{bucket}_{int(window_start)}"
    for _ in range(3):
        if cache.add(key, 1, timeout=math.ceil(remaining) + _COUNTER_GRACE_SECONDS):
            return None if limit >= 1 else remaining
        try:
            return None if cache.incr(key) <= limit else remaining
        except ValueError:  # expired or evicted between add and incr: add it again
            continue
    logger.warning("Rate limit counter %s could not be counted; the request is let through", bucket)
    return None


class WindowRateThrottle(BaseThrottle):
    """A throttle over one or more fixed-window buckets; a request must fit in all of them."""

    def buckets(self, request) -> list[tuple[str, str]]:
        """The (scope, ident) buckets this request counts against; the scope names its rate."""
        raise NotImplementedError

    def allow_request(self, request, view):
        self.retry_after = None
        for scope, ident in self.buckets(request):
            rate = settings.THROTTLE_RATES.get(scope)
            if not rate:
                continue
            self.retry_after = rate_window_hit(f"{scope}_{ident}", rate)
            if self.retry_after is not None:
                return False
        return True

    def wait(self):
        return math.ceil(self.retry_after) if self.retry_after is not None else None


class PrincipalRateThrottle(WindowRateThrottle):
    """One bucket per caller, with the rate of the caller's kind from `THROTTLE_RATES`.

    Kinds: `key` (per API key), `user` (per user), `service` (the shared-secret
    principal), `anon` (per client IP). A request made with an API key counts
    against the key's own bucket and against its user's bucket, which the
    user's JWT and session requests and all their other keys share: more keys
    never mean more requests. Counts live in the default cache, which is Redis
    when `CACHE_URL` names one, so every web process shares them.
    """

    def buckets(self, request):
        from accounts.models import ApiKey

        if isinstance(request.auth, ApiKey):
            return [("key", request.auth.prefix), ("user", str(request.auth.user_id))]
        if is_service(request.user):
            return [("service", "service")]
        if request.user and request.user.is_authenticated:
            return [("user", str(request.user.pk))]
        return [("anon", self.get_ident(request))]


class LoginRateThrottle(WindowRateThrottle):
    """Limit password logins and token refreshes per client IP (`THROTTLE_RATES["login"]`)."""

    def buckets(self, request):
        return [("login", self.get_ident(request))]
