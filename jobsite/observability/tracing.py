"""Optional OpenTelemetry traces: the API call, the job's run and its stages (and its webhook deliveries) in one trace.

Off by default. With `OTEL_EXPORTER_OTLP_ENDPOINT` set (an OTLP/HTTP collector,
`http://otel-collector:4318`) and the packages of `requirements-otel.txt`
installed, each process exports its spans there in batches:

- the web server opens a server span per request, the child of the caller's
  W3C `traceparent` when it sent one;
- a job submitted in that request records the request span's `traceparent`
  (without tracing, the caller's own, as it came);
- the worker opens a consumer span for each run of the job, the child of the
  recorded `traceparent`, and one span per stage run inside it;
- a webhook delivery opens its span from the job's `traceparent` too
  (:func:`span_from_traceparent`), so the collector stitches API -> queue ->
  worker -> webhook into one trace.

Nothing here imports OpenTelemetry unless tracing is on: with it off, each
hook is one boolean test.
"""

from __future__ import annotations

import os
from contextlib import contextmanager, nullcontext
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.conf import settings

if TYPE_CHECKING:
    from jobs.run import ClaimedJob, StageRecord

_NO_SPAN = nullcontext()


class _State:
    enabled = bool(settings.OTEL_EXPORTER_OTLP_ENDPOINT)
    provider: Any = None  # this process's TracerProvider, built on first use
    pid: int | None = None
    tracer: Any = None


_state = _State()


def enabled() -> bool:
    return _state.enabled


def use_tracer_provider(provider) -> None:
    """Send spans to `provider` from now on (tests: an SDK provider with an in-memory exporter).

    None turns tracing off.
    """
    _state.provider, _state.pid = provider, os.getpid()
    _state.tracer = provider.get_tracer("jobsite") if provider is not None else None
    _state.enabled = provider is not None


def _tracer():
    """The tracer of this process, its provider built on first use in each process (after a fork too)."""
    if _state.pid != os.getpid():
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider = TracerProvider(resource=Resource.create({"service.name": settings.OTEL_SERVICE_NAME}))
        endpoint = settings.OTEL_EXPORTER_OTLP_ENDPOINT.rstrip("/") + "/v1/traces"
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
        use_tracer_provider(provider)
    return _state.tracer


def _context_from(traceparent: str):
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    return TraceContextTextMapPropagator().extract({"traceparent": traceparent}) if traceparent else None


def current_traceparent() -> str:
    """The W3C `traceparent` of the span running now, or "" (tracing off, or no span)."""
    if not _state.enabled:
        return ""
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    if not trace.get_current_span().get_span_context().is_valid:
        return ""
    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)
    return carrier.get("traceparent", "")


@contextmanager
def span_from_traceparent(name: str, traceparent: str, *, kind: str = "internal", attributes: dict | None = None):
    """Run the block in a span that continues the trace of `traceparent` (a new trace when it is empty).

    `kind` is an OpenTelemetry SpanKind name in lower case (`server`,
    `consumer`, `client`, `internal`). Yields the span, or None when tracing is off.
    """
    if not _state.enabled:
        yield None
        return
    from opentelemetry.trace import SpanKind

    tracer = _tracer()
    with tracer.start_as_current_span(
        name, context=_context_from(traceparent), kind=SpanKind[kind.upper()], attributes=attributes or {}
    ) as span:
        yield span


def job_span(job: ClaimedJob, *, queue: str):
    """The span of one run of a job, the child of the span that submitted it; a no-op when tracing is off."""
    if not _state.enabled:
        return _NO_SPAN
    return span_from_traceparent(
        f"job {job.pipeline}",
        job.traceparent,
        kind="consumer",
        attributes={
            "jobsite.job.id": str(job.id),
            "jobsite.pipeline": job.pipeline,
            "jobsite.job.attempt": job.attempts,
            "messaging.system": "dramatiq",
            "messaging.destination.name": queue,
            "messaging.operation.type": "process",
        },
    )


def job_outcome(outcome: str) -> None:
    """Mark the running job's span with its outcome (an error status when it failed)."""
    if not _state.enabled:
        return
    from opentelemetry import trace
    from opentelemetry.trace import Status, StatusCode

    span = trace.get_current_span()
    span.set_attribute("jobsite.job.outcome", outcome)
    if outcome == "failed":
        span.set_status(Status(StatusCode.ERROR, "the job failed"))


def stage_span(job: ClaimedJob, record: StageRecord) -> None:
    """Record a finished stage run as a span inside the job's span, with the run's own start and end."""
    if not _state.enabled:
        return
    from opentelemetry.trace import Status, StatusCode

    span = _tracer().start_span(
        f"stage {record.name}",
        start_time=_nanoseconds(record.started_at),
        attributes={
            "jobsite.job.id": str(job.id),
            "jobsite.stage.index": record.index,
            "jobsite.stage.type": record.stage_type,
            "jobsite.stage.attempt": record.attempt,
            "jobsite.stage.outcome": record.status,
        },
    )
    if record.error:
        span.set_status(Status(StatusCode.ERROR, record.error[:200]))
    span.end(end_time=_nanoseconds(record.finished_at or record.started_at))


def _nanoseconds(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000_000)


class TracingMiddleware:
    """A server span for each request, the child of the caller's `traceparent`; nothing when tracing is off."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not _state.enabled:
            return self.get_response(request)
        traceparent = request.headers.get("traceparent", "")
        attributes = {"http.request.method": request.method, "url.path": request.path}
        with span_from_traceparent(f"{request.method}", traceparent, kind="server", attributes=attributes) as span:
            response = self.get_response(request)
            match = getattr(request, "resolver_match", None)
            if match is not None:
                from .middleware import route_template

                route = route_template(match.route)
                span.set_attribute("http.route", route)
                span.update_name(f"{request.method} {route}")
            span.set_attribute("http.response.status_code", response.status_code)
            request_id = getattr(request, "request_id", None)
            if request_id:
                span.set_attribute("jobsite.request_id", request_id)
        return response
