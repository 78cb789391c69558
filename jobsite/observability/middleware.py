"""HTTP request metrics: count and time every request by its route template, method and status."""

from __future__ import annotations

import re
import time
from functools import lru_cache

from . import metrics

UNMATCHED = "unmatched"
_NAMED_GROUP = re.compile(r"\(\?P<(\w+)>(?:[^()]|\([^()]*\))*\)")


@lru_cache(maxsize=512)
def route_template(route: str) -> str:
    """A URL pattern as a readable template: `api/v1/^jobs/(?P<pk>[^/.]+)/$` -> `/api/v1/jobs/<pk>/`.

    Patterns come from the URLconf, never from the request, so there are as many as there are routes.
    """
    template = _NAMED_GROUP.sub(r"<\1>", route)
    template = template.replace("^", "").replace("$", "").replace("/?", "/").replace("\\.", ".")
    return "/" + template.lstrip("/")


class HttpMetricsMiddleware:
    """Record each answered request in `jobsite_http_requests_total` and its duration histogram.

    The route label is the matched URL pattern (`/api/v1/jobs/<pk>/`), or
    `unmatched` for a path no route matched: a raw path would give every
    scanner's probe a series of its own.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        metrics.http_request(
            route=route_template(match.route) if match is not None else UNMATCHED,
            method=request.method,
            status=response.status_code,
            seconds=time.perf_counter() - started,
        )
        return response
