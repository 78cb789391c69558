"""OpenTelemetry traces (optional): the API call, the job's run and its stages in one trace.

The spans go to the SDK's in-memory exporter; production sends them to
OTEL_EXPORTER_OTLP_ENDPOINT. CI installs requirements-otel.txt, so these run there.
"""

import subprocess
import sys

import pytest
from django.conf import settings

from jobs.models import Job, JobStatus
from jobs.run import job_run
from jobsite.observability import tracing
from tests.e2e.conftest import ROOT
from tests.factories import PipelineFactory

from . import stages  # noqa: F401  registers obs_fail

pytest.importorskip("opentelemetry.sdk", reason="the optional packages of requirements-otel.txt")

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{CALLER_SPAN}-01"


@pytest.fixture
def spans():
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use_tracer_provider(provider)
    yield exporter
    tracing.use_tracer_provider(None)


def hex_id(value: int, width: int) -> str:
    return format(value, f"0{width}x")


def submit(client, pipeline, **headers) -> Job:
    response = client.post(
        "/api/v1/jobs/", {"pipeline": pipeline.name, "input_data": {"n": 1}}, format="json", **headers
    )
    assert response.status_code == 201, response.content
    return Job.objects.get(pk=response.json()["job_id"])


def pipeline_of(*stage_types):
    spec = [{"name": f"s{i}", "type": kind} for i, kind in enumerate(stage_types)]
    return PipelineFactory(config={"input_schema": {"type": "object"}, "stages": spec})


def test_the_request_the_run_and_its_stages_are_one_trace(db, stub_broker, service_client, spans):
    from opentelemetry.trace import SpanKind

    job = submit(service_client, pipeline_of("echo", "echo"), HTTP_TRACEPARENT=TRACEPARENT)
    [request] = spans.get_finished_spans()
    spans.clear()
    job_run(job_id=str(job.pk))
    run, *stage_spans = sorted(spans.get_finished_spans(), key=lambda s: s.kind != SpanKind.CONSUMER)

    # The request continues the caller's trace, and the job records the request's span.
    assert request.name == "POST /api/v1/jobs/"
    assert request.kind == SpanKind.SERVER
    assert hex_id(request.context.trace_id, 32) == TRACE_ID
    assert hex_id(request.parent.span_id, 16) == CALLER_SPAN
    assert request.attributes["http.response.status_code"] == 201
    assert job.traceparent == f"00-{TRACE_ID}-{hex_id(request.context.span_id, 16)}-01"

    # The worker's run is the request span's child; each stage run is the run's.
    assert run.name == f"job {job.pipeline.name}"
    assert run.kind == SpanKind.CONSUMER
    assert run.context.trace_id == request.context.trace_id
    assert run.parent.span_id == request.context.span_id
    assert run.attributes["jobsite.job.id"] == str(job.pk)
    assert run.attributes["jobsite.job.outcome"] == "completed"
    assert [s.name for s in stage_spans] == ["stage s0", "stage s1"]
    assert all(s.parent.span_id == run.context.span_id for s in stage_spans)
    assert all(run.start_time <= s.start_time <= s.end_time <= run.end_time for s in stage_spans)


def test_a_failed_run_is_an_error_span(db, stub_broker, service_client, spans):
    from opentelemetry.trace import StatusCode

    job = submit(service_client, pipeline_of("obs_fail"))
    spans.clear()
    job_run(job_id=str(job.pk))

    by_name = {s.name: s for s in spans.get_finished_spans()}
    assert by_name[f"job {job.pipeline.name}"].status.status_code == StatusCode.ERROR
    assert by_name["stage s0"].status.status_code == StatusCode.ERROR
    assert Job.objects.get(pk=job.pk).status == JobStatus.FAILED


def test_work_done_later_for_the_job_joins_its_trace(spans):
    with tracing.span_from_traceparent("webhook deliver", TRACEPARENT, kind="client") as span:
        assert span is not None
    [delivery] = spans.get_finished_spans()
    assert hex_id(delivery.context.trace_id, 32) == TRACE_ID
    assert hex_id(delivery.parent.span_id, 16) == CALLER_SPAN


def test_without_tracing_the_job_keeps_the_callers_traceparent(db, stub_broker, service_client):
    assert not tracing.enabled()
    job = submit(service_client, pipeline_of("echo"), HTTP_TRACEPARENT=TRACEPARENT)
    assert job.traceparent == TRACEPARENT
    assert job_run(job_id=str(job.pk)) == JobStatus.COMPLETED


def test_a_process_without_tracing_never_imports_opentelemetry():
    script = (
        "import sys, django; django.setup(); "
        "import jobsite.urls, jobs.run, jobsite.observability.tracing; "
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))"
    )
    env = {"DJANGO_SETTINGS_MODULE": "jobsite.settings", "SECRET_KEY": "x", "DATABASE_URL": "sqlite:///:memory:"}
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    assert not settings.OTEL_EXPORTER_OTLP_ENDPOINT
