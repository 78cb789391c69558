"""Webhook delivery metrics: the one module the webhooks app records them through.

They are Prometheus metrics of jobsite.observability (`jobsite_webhook_attempts_total`
by outcome, `jobsite_webhook_attempt_duration_seconds`,
`jobsite_webhook_delivery_latency_seconds`), counted in every process and
exposed at `/metrics`.
"""

from __future__ import annotations

from jobsite.observability import metrics


def attempt_recorded(*, outcome: str, duration_seconds: float) -> None:
    """Count one delivery attempt by outcome (succeeded, http_error, timeout, connection_error, refused, ...)."""
    metrics.webhook_attempt_recorded(outcome=outcome, duration_seconds=duration_seconds)


def delivery_succeeded(*, latency_seconds: float) -> None:
    """Record the time from the job's change (the event) to the receiver's 2xx."""
    metrics.webhook_delivery_succeeded(latency_seconds=latency_seconds)
