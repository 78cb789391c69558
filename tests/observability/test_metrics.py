"""The metrics each event records, in this process (no multiprocess directory), and the scrape-time gauges."""

from datetime import timedelta

import dramatiq
import pytest
from django.conf import settings as django_settings
from django.utils import timezone
from dramatiq.brokers.redis import RedisBroker
from prometheus_client import REGISTRY
from rest_framework.test import APIClient

from jobs.models import Job, JobStatus, WorkerProcess
from jobs.run import job_run
from jobs.services import job_cancel
from jobsite.observability.middleware import route_template
from tests import credentials
from tests.factories import JobFactory, PipelineFactory

from . import stages  # noqa: F401  registers the obs_* stage types in this process
from .conftest import ALLOWED_LABELS, Scrape


def value(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def pipeline_of(*stage_types: str, retries: int = 0, name: str | None = None):
    spec = [{"name": f"s{i}-{kind}", "type": kind, "retries": retries} for i, kind in enumerate(stage_types)]
    config = {"input_schema": {"type": "object"}, "stages": spec, "max_attempts": 3}
    return PipelineFactory(config=config, **({"name": name} if name else {}))


def run(pipeline, **fields) -> Job:
    job = JobFactory(pipeline=pipeline, **{"status": JobStatus.QUEUED, **fields})
    job_run(job_id=str(job.pk))
    job.refresh_from_db()
    return job


@pytest.fixture
def scrape(scrape_token):
    def scrape() -> Scrape:
        response = APIClient().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {scrape_token}")
        assert response.status_code == 200
        return Scrape.parse(response.content.decode())

    return scrape


# -- jobs ------------------------------------------------------------------------------


def test_a_completed_run_counts_its_start_completion_duration_stages_and_pickup(db, stub_broker):
    pipeline = pipeline_of("echo", "echo")
    created = timezone.now() - timedelta(seconds=2)

    job = run(pipeline, created_at=created)

    p = {"pipeline": pipeline.name}
    assert job.status == JobStatus.COMPLETED
    assert value("jobsite_jobs_started_total", **p) == 1
    assert value("jobsite_jobs_completed_total", **p) == 1
    assert value("jobsite_jobs_failed_total", **p) == 0
    assert value("jobsite_job_duration_seconds_count", outcome="completed", **p) == 1
    assert value("jobsite_stage_duration_seconds_count", stage_type="echo", outcome="completed", **p) == 2
    assert value("jobsite_job_pickup_seconds_count", queue="jobs", **p) == 1
    # Waited two seconds since its creation: observed in the 2.5 s bucket, not the 1 s one.
    assert value("jobsite_job_pickup_seconds_bucket", queue="jobs", le="1.0", **p) == 0
    assert value("jobsite_job_pickup_seconds_bucket", queue="jobs", le="2.5", **p) == 1


def test_pickup_is_counted_from_run_at_for_a_scheduled_job_and_only_on_its_first_run(db, stub_broker):
    pipeline = pipeline_of("echo")
    long_ago = timezone.now() - timedelta(hours=2)

    run(pipeline, created_at=long_ago, run_at=timezone.now(), status=JobStatus.SCHEDULED)
    run(pipeline, created_at=long_ago, attempts=1)  # its second run

    p = {"pipeline": pipeline.name, "queue": "jobs"}
    assert value("jobsite_jobs_started_total", pipeline=pipeline.name) == 2
    assert value("jobsite_job_pickup_seconds_count", **p) == 1
    assert value("jobsite_job_pickup_seconds_bucket", le="1.0", **p) == 1


def test_the_priority_band_is_the_pickup_queue(db, stub_broker):
    pipeline = pipeline_of("echo")
    run(pipeline, priority=9)
    assert value("jobsite_job_pickup_seconds_count", pipeline=pipeline.name, queue="jobs.urgent") == 1


def test_a_failed_run_counts_a_failure_and_a_failed_stage(db, stub_broker):
    pipeline = pipeline_of("obs_fail")

    assert run(pipeline).status == JobStatus.FAILED

    p = {"pipeline": pipeline.name}
    assert value("jobsite_jobs_failed_total", **p) == 1
    assert value("jobsite_jobs_completed_total", **p) == 0
    assert value("jobsite_job_duration_seconds_count", outcome="failed", **p) == 1
    assert value("jobsite_stage_duration_seconds_count", stage_type="obs_fail", outcome="failed", **p) == 1


def test_a_stage_retry_counts_as_retried(db, stub_broker):
    pipeline = pipeline_of("obs_flaky", retries=2)

    assert run(pipeline).status == JobStatus.RETRYING

    p = {"pipeline": pipeline.name}
    assert value("jobsite_jobs_retried_total", **p) == 1
    assert value("jobsite_jobs_failed_total", **p) == 0
    assert value("jobsite_job_duration_seconds_count", outcome="retrying", **p) == 1


def test_cancellations_count_whether_the_job_waited_or_ran(db, stub_broker):
    pipeline = pipeline_of("obs_cancel_own_job", "echo")

    assert run(pipeline).status == JobStatus.CANCELLED
    waiting = JobFactory(pipeline=pipeline, status=JobStatus.QUEUED)
    job_cancel(job_id=waiting.pk)

    p = {"pipeline": pipeline.name}
    assert value("jobsite_jobs_cancelled_total", **p) == 2
    assert value("jobsite_job_duration_seconds_count", outcome="cancelled", **p) == 1


def test_cancelling_a_running_job_is_left_to_its_worker_to_count(db, stub_broker):
    pipeline = pipeline_of("echo")
    running = JobFactory(pipeline=pipeline, status=JobStatus.PROCESSING)

    job_cancel(job_id=running.pk)

    assert value("jobsite_jobs_cancelled_total", pipeline=pipeline.name) == 0


def test_submissions_count_created_jobs_but_not_repeats(db, stub_broker, service_client):
    pipeline = pipeline_of("echo")
    body = {"pipeline": pipeline.name, "input_data": {"n": 1}}

    assert service_client.post("/api/v1/jobs/", body, format="json").status_code == 201
    repeat = {**body, "idempotency_key": "k1"}
    assert service_client.post("/api/v1/jobs/", repeat, format="json").status_code == 201
    assert service_client.post("/api/v1/jobs/", repeat, format="json").status_code == 200  # the same job again

    assert value("jobsite_jobs_submitted_total", pipeline=pipeline.name) == 2


@pytest.fixture
def unreachable_broker():
    previous = dramatiq.get_broker()
    broker = RedisBroker(url="redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    for queue in previous.get_declared_queues():
        broker.declare_queue(queue)
    for actor_name in previous.get_declared_actors():
        actor = previous.get_actor(actor_name)
        actor.broker = broker
    dramatiq.set_broker(broker)
    yield broker
    for actor_name in previous.get_declared_actors():
        previous.get_actor(actor_name).broker = previous
    dramatiq.set_broker(previous)


def test_a_send_the_broker_refuses_counts_as_a_send_failure(
    db, service_client, unreachable_broker, django_capture_on_commit_callbacks
):
    pipeline = pipeline_of("echo")
    before = value("jobsite_broker_send_failures_total", queue="jobs.high")

    with django_capture_on_commit_callbacks(execute=True):
        response = service_client.post(
            "/api/v1/jobs/", {"pipeline": pipeline.name, "input_data": {}, "priority": 5}, format="json"
        )

    assert response.status_code == 201
    assert Job.objects.get(pk=response.json()["job_id"]).status == JobStatus.PENDING
    assert value("jobsite_broker_send_failures_total", queue="jobs.high") == before + 1


def test_an_audit_row_that_cannot_be_written_is_counted(user, monkeypatch):
    from audit.models import AuditLog

    def broken(**kwargs):
        raise RuntimeError("audit table unavailable")

    monkeypatch.setattr(AuditLog.objects, "create", broken)
    before = value("jobsite_audit_write_failures_total")

    APIClient().get("/api/v1/jobs/", **credentials.jwt_for(user))

    assert value("jobsite_audit_write_failures_total") == before + 1


def test_webhook_attempts_and_latency_are_recorded_with_bounded_outcomes():
    from jobsite.observability.metrics import webhook_attempt_recorded, webhook_delivery_succeeded

    before = {o: value("jobsite_webhook_attempts_total", outcome=o) for o in ("succeeded", "timeout", "other")}
    latencies = value("jobsite_webhook_delivery_latency_seconds_count")

    webhook_attempt_recorded(outcome="succeeded", duration_seconds=0.2)
    webhook_attempt_recorded(outcome="timeout", duration_seconds=10)
    webhook_attempt_recorded(outcome="https://example.com/hook?id=42", duration_seconds=0.1)  # never a label
    webhook_delivery_succeeded(latency_seconds=1.5)

    after = {o: value("jobsite_webhook_attempts_total", outcome=o) for o in before}
    assert {o: after[o] - before[o] for o in before} == {"succeeded": 1, "timeout": 1, "other": 1}
    assert value("jobsite_webhook_attempt_duration_seconds_count", outcome="timeout") >= 1
    assert value("jobsite_webhook_delivery_latency_seconds_count") == latencies + 1


# -- HTTP ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "template"),
    [
        ("api/v1/^jobs/(?P<pk>[^/.]+)/$", "/api/v1/jobs/<pk>/"),
        ("api/v1/^jobs/(?P<pk>[^/.]+)/result/$", "/api/v1/jobs/<pk>/result/"),
        ("api/v1/^jobs/(?P<pk>[^/.]+)\\.(?P<format>[a-z0-9]+)/?$", "/api/v1/jobs/<pk>.<format>/"),
        ("^health/queue/?$", "/health/queue/"),
        ("admin/jobs/job/<path:object_id>/", "/admin/jobs/job/<path:object_id>/"),
        ("api/v1/", "/api/v1/"),
    ],
)
def test_route_templates_name_the_pattern_not_the_path(pattern, template):
    assert route_template(pattern) == template


def test_requests_are_counted_by_route_template_method_and_status(db, stub_broker, service_client):
    job = JobFactory(pipeline=pipeline_of("echo"), status=JobStatus.QUEUED)
    route = {"route": "/api/v1/jobs/<pk>/", "method": "GET"}
    before = value("jobsite_http_requests_total", status="200", **route)
    unmatched = value("jobsite_http_requests_total", route="unmatched", method="GET", status="404")
    odd = value("jobsite_http_requests_total", route="/health/", method="other", status="405")

    assert service_client.get(f"/api/v1/jobs/{job.pk}/").status_code == 200
    assert service_client.get(f"/no/such/{job.pk}").status_code == 404
    assert service_client.generic("BREW", "/health/").status_code == 405

    assert value("jobsite_http_requests_total", status="200", **route) == before + 1
    assert value("jobsite_http_request_duration_seconds_count", **route) >= 1
    assert value("jobsite_http_requests_total", route="unmatched", method="GET", status="404") == unmatched + 1
    assert value("jobsite_http_requests_total", route="/health/", method="other", status="405") == odd + 1


# -- /metrics: what it shows -------------------------------------------------------------


def test_metrics_show_this_process_and_the_gauges_read_now(
    db, stub_broker, scrape, service_client, django_capture_on_commit_callbacks
):
    pipeline = pipeline_of("echo")
    now = timezone.now()
    WorkerProcess.objects.create(
        worker_id="box:7:abc", hostname="box", pid=7, queues=["jobs", "maintenance"], started_at=now, last_seen_at=now
    )
    stale = JobFactory(pipeline=pipeline, status=JobStatus.PENDING)
    Job.objects.filter(pk=stale.pk).update(updated_at=now - timedelta(minutes=5))
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(2):
            service_client.post("/api/v1/jobs/", {"pipeline": pipeline.name, "input_data": {}}, format="json")

    metrics = scrape()

    assert metrics.value("jobsite_jobs_submitted_total", pipeline=pipeline.name) == 2
    assert metrics.value("jobsite_broker_up") == 1
    assert metrics.value("jobsite_database_up") == 1
    assert metrics.value("jobsite_queue_depth", queue="jobs") == 2
    assert metrics.value("jobsite_queue_delayed", queue="jobs") == 0
    assert metrics.has("jobsite_queue_dead", queue="jobs.urgent")
    assert metrics.value("jobsite_workers_alive") == 1
    assert metrics.value("jobsite_queue_workers", queue="jobs") == 1
    assert metrics.value("jobsite_queue_workers", queue="jobs.high") == 0
    assert metrics.value("jobsite_outbox_pending_jobs") == 1
    assert metrics.jobsite_label_names() <= ALLOWED_LABELS


def test_an_unreachable_broker_is_reported_not_a_failed_scrape(db, unreachable_broker, scrape):
    metrics = scrape()
    assert metrics.value("jobsite_broker_up") == 0
    assert not metrics.has("jobsite_queue_depth")
    assert metrics.value("jobsite_database_up") == 1


# -- /metrics: who may read it ----------------------------------------------------------


def _get(**headers):
    return APIClient().get("/metrics", **headers)


def test_anonymous_callers_get_a_401_in_the_error_shape(db):
    response = _get()
    assert response.status_code == 401
    assert set(response.json()) == {"error", "message", "details", "request_id"}
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_a_scrape_token_or_an_operator_reads_the_metrics(db, stub_broker, scrape_token, operator_user):
    staff = operator_user
    staff.is_staff = True
    staff.save()
    session = APIClient()
    session.force_login(staff)

    assert _get(HTTP_AUTHORIZATION=f"Bearer {scrape_token}").status_code == 200
    assert _get(HTTP_X_API_SECRET=django_settings.JOBSITE_API_SECRET).status_code == 200
    assert _get(**credentials.jwt_for(operator_user)).status_code == 200
    assert _get(**credentials.api_key_for(operator_user, scopes=["jobs:read"])).status_code == 200
    assert session.get("/metrics/").status_code == 200


def test_other_callers_are_refused(db, stub_broker, scrape_token, user, operator_user):
    assert _get(**credentials.jwt_for(user)).status_code == 403  # a submitter
    assert _get(**credentials.api_key_for(operator_user, scopes=["jobs:create"])).status_code == 403
    assert _get(HTTP_AUTHORIZATION=f"Bearer {scrape_token}x").status_code == 401
    assert _get(HTTP_AUTHORIZATION="Bearer not-a-token").status_code == 401
    assert _get(HTTP_X_API_SECRET="not the secret").status_code == 401


def test_without_configured_tokens_no_bearer_token_reads_the_metrics(db, settings):
    settings.METRICS_TOKENS = []
    assert _get(HTTP_AUTHORIZATION="Bearer scrape-token-0123456789abcdef").status_code == 401


def test_metrics_public_opens_them_to_everyone(db, stub_broker, settings):
    settings.METRICS_PUBLIC = True
    response = _get()
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert "jobsite_broker_up" in response.content.decode()


def test_scrapers_are_never_throttled(db, stub_broker, settings, scrape_token):
    settings.THROTTLE_RATES = {**settings.THROTTLE_RATES, "anon": "2/minute", "user": "2/minute"}
    statuses = [_get(HTTP_AUTHORIZATION=f"Bearer {scrape_token}").status_code for _ in range(4)]
    assert statuses == [200] * 4
    guesses = [_get(HTTP_AUTHORIZATION=f"Bearer guess-{n}").status_code for n in range(3)]
    assert guesses == [401, 401, 429]
