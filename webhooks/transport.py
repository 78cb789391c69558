"""One HTTP attempt of a delivery: POST, bounded in time and in what is kept.

Through `jobsite.outbound.safe_request`: the SSRF guard checks the URL and the
address actually connected to (unless ALLOW_PRIVATE_NETWORK_URLS), redirects
are not followed (a 3xx is a failed attempt), the connect and read timeouts
come from settings and bound the body download too, and at most
WEBHOOK_RESPONSE_EXCERPT_BYTES of the answer are read.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from django.conf import settings

from jobsite.outbound import UnsafeURL, safe_request

USER_AGENT = "jobsite-webhooks/1"
_OS_ERROR = re.compile(r"\[Errno -?\d+\] [^'\")]+")


@dataclass(frozen=True)
class AttemptResult:
    outcome: str  # succeeded | http_error | timeout | connection_error | refused | error
    status_code: int | None
    error: str
    excerpt: str
    duration_ms: int

    @property
    def succeeded(self) -> bool:
        return self.outcome == "succeeded"


def _text(data: bytes) -> str:
    # PostgreSQL text cannot hold NUL; the excerpt is for people, so it is shown escaped.
    return data.decode("utf-8", "replace").replace("\x00", "\\u0000")


def post(url: str, *, body: str, headers: dict[str, str]) -> AttemptResult:
    """POST `body` (JSON) to `url` with `headers`; never raises for anything the receiver does."""
    import requests  # here, not at import: a process that never delivers never loads it

    started = time.monotonic()
    status_code, excerpt, error = None, "", ""
    try:
        response = safe_request(
            "POST",
            url,
            data=body.encode(),
            headers={"Content-Type": "application/json", "User-Agent": USER_AGENT, **headers},
            timeout=(settings.WEBHOOK_CONNECT_TIMEOUT_SECONDS, settings.WEBHOOK_READ_TIMEOUT_SECONDS),
            max_bytes=settings.WEBHOOK_RESPONSE_EXCERPT_BYTES,
            truncate=True,
        )
    except UnsafeURL as exc:
        outcome, error = "refused", str(exc)
    except requests.Timeout:
        outcome = "timeout"
        error = (
            f"No answer within the timeouts (connect {settings.WEBHOOK_CONNECT_TIMEOUT_SECONDS:g} s, "
            f"read {settings.WEBHOOK_READ_TIMEOUT_SECONDS:g} s)."
        )
    except requests.ConnectionError as exc:
        # The reason only: requests' message repeats the URL.
        reason = _OS_ERROR.search(str(exc))
        outcome, error = "connection_error", f"Could not connect: {reason.group() if reason else type(exc).__name__}."
    except (requests.RequestException, ValueError) as exc:
        outcome, error = "error", f"{type(exc).__name__}: {exc}"[:500]
    else:
        status_code = response.status_code
        excerpt = _text(response.content)
        if 200 <= status_code < 300:
            outcome = "succeeded"
        else:
            outcome = "http_error"
            error = f"The receiver answered {status_code}" + (
                " (redirects are not followed)." if 300 <= status_code < 400 else "."
            )
    duration_ms = round((time.monotonic() - started) * 1000)
    return AttemptResult(outcome, status_code, error, excerpt, duration_ms)
