"""Metrics, correlated logs and traces: what jobsite tells operators about itself.

- :mod:`.metrics`: every Prometheus metric, and one function per event that records it;
- :mod:`.collectors`: the gauges read at scrape time (queues, workers, the outbox);
- :mod:`.views`: `/metrics`;
- :mod:`.middleware`: HTTP request metrics;
- :mod:`.jobs`: what the worker's run path reports (metrics, log context, spans);
- :mod:`.tracing`: optional OpenTelemetry spans, on when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
"""
