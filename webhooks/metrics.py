"""Webhook delivery metrics: the one module that records them.

Plain in-process counters for now; the observability work backs these
functions with prometheus-client without touching their callers.
"""

from __future__ import annotations

import threading
from collections import Counter

_lock = threading.Lock()
_attempts: Counter[str] = Counter()
_latencies: list[float] = []
_LATENCY_SAMPLES = 10_000


def attempt_recorded(*, outcome: str, duration_seconds: float) -> None:
    """Count one delivery attempt by outcome (succeeded, http_error, timeout, connection_error, refused, ...)."""
    with _lock:
        _attempts[outcome] += 1


def delivery_succeeded(*, latency_seconds: float) -> None:
    """Record the time from the job's change (the event) to the receiver's 2xx."""
    with _lock:
        _latencies.append(latency_seconds)
        del _latencies[:-_LATENCY_SAMPLES]


def snapshot() -> dict:
    """The counters and the recent latencies, for tests and for the exporter."""
    with _lock:
        return {"attempts": dict(_attempts), "latencies": list(_latencies)}


def reset() -> None:
    with _lock:
        _attempts.clear()
        _latencies.clear()
