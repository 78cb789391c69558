"""The jobs REST API: submit, list, detail, result, and the error envelope."""

import hashlib
import json
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from jobs.models import Job, JobResult, JobStatus, StageRun, StageRunStatus
from jobs.run import job_run
from tests.conftest import grant_role
from tests.contracts import JOBSITE_SUMMARY_EXTRAS, SEED_JOB_SUMMARY
from tests.factories import JobFactory, PipelineFactory, UserFactory

JOBS_URL = "/api/v1/jobs/"
# Fixed, not uuid4(): parametrized ids must be the same in every pytest-xdist worker.
UNKNOWN_ID = "73f8e456-3b50-4b5c-b171-3c07af427102"
REQUEST_ID = "test-request-0042"

# The LLM workflow service's JobSummary, exactly, then jobsite's extras.
SEED_SUMMARY_FIELDS = SEED_JOB_SUMMARY
SUMMARY_FIELDS = {*SEED_JOB_SUMMARY, *JOBSITE_SUMMARY_EXTRAS}
# What the detail adds.
DETAIL_EXTRA_FIELDS = {
    "input_data",
    "debug_mode",
    "stages",
    "result_url",
    "webhook_url",
    "idempotency_key",
    "run_at",
    "locked_by",
    "heartbeat_at",
    "updated_at",
    "debug",
}
ENVELOPE_FIELDS = {"error", "message", "details", "request_id"}
RESULT_FIELDS = {"job_id", "result", "metadata", "processing_time_ms", "created_at", "expires_at"}


def post_job(client, body, **extra):
    return client.post(JOBS_URL, body, format="json", HTTP_X_REQUEST_ID=REQUEST_ID, **extra)


def get(client, url, **extra):
    return client.get(url, HTTP_X_REQUEST_ID=REQUEST_ID, **extra)


def detail_url(job_id):
    return f"{JOBS_URL}{job_id}/"


def result_url(job_id):
    return f"{JOBS_URL}{job_id}/result/"


def assert_error(response, status_code, code, *, seed_detail=False):
    """Check the error envelope, the status and the echoed request id; return the body.

    `seed_detail`: the endpoint also serves the LLM workflow service, whose clients read `detail`.
    """
    assert response.status_code == status_code, response.content
    body = response.json()
    assert set(body) == (ENVELOPE_FIELDS | {"detail"} if seed_detail else ENVELOPE_FIELDS)
    assert body["error"] == code
    assert isinstance(body["message"], str) and body["message"]
    assert isinstance(body["details"], dict)
    assert body["request_id"] == REQUEST_ID
    assert response["X-Request-ID"] == REQUEST_ID
    return body


def completed_job(pipeline, input_data, **fields):
    job = JobFactory(pipeline=pipeline, input_data=input_data, **fields)
    job_run(job_id=str(job.id))
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED
    return job


# --- submit -----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_service_submit_returns_201_with_the_queued_job_detail(service_client, demo_pipelines, stub_broker):
    response = post_job(
        service_client,
        {"pipeline": "text-analysis", "input_data": {"text": "Hello."}, "priority": 5, "action": "analyse"},
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) >= SUMMARY_FIELDS | DETAIL_EXTRA_FIELDS
    assert body["status"] == "queued"
    assert body["queued_at"] is not None
    assert body["workflow_name"] == "text-analysis"
    assert body["pipeline_version"] == demo_pipelines["text-analysis"].version
    assert body["input_data"] == {"text": "Hello."}
    assert (body["priority"], body["action"], body["user_id"], body["username"]) == (5, "analyse", None, None)
    assert body["stages"] == []
    assert body["result_url"] is None
    job = Job.objects.get(pk=body["job_id"])
    assert job.status == JobStatus.QUEUED
    assert job.created_by is None
    assert stub_broker.queues["jobs.high"].qsize() == 1  # priority 5: the high band


def test_submit_accepts_workflow_name_as_an_alias_of_pipeline(service_client, demo_pipelines):
    response = post_job(service_client, {"workflow_name": "sample_task", "input_data": {"a": 1}})

    assert response.status_code == 201, response.content
    assert response.json()["workflow_name"] == "sample_task"
    assert Job.objects.get(pk=response.json()["job_id"]).pipeline == demo_pipelines["sample_task"]


def test_submit_without_trailing_slash_is_answered_the_same(service_client, demo_pipelines):
    response = service_client.post(JOBS_URL.rstrip("/"), {"pipeline": "sample_task", "input_data": {}}, format="json")

    assert response.status_code == 201
    assert Job.objects.count() == 1


def test_list_without_trailing_slash_reaches_the_list(service_client, db):
    JobFactory()

    response = service_client.get(JOBS_URL.rstrip("/"), follow=True)

    assert response.status_code == 200
    assert response.json()["total"] == 1


def test_service_may_submit_on_behalf_of_any_user(service_client, demo_pipelines, user):
    response = post_job(service_client, {"pipeline": "sample_task", "input_data": {}, "user_id": str(user.pk)})

    assert response.status_code == 201
    assert response.json()["user_id"] == str(user.pk)
    assert Job.objects.get(pk=response.json()["job_id"]).user_id == user.pk


def test_session_user_submission_is_filed_under_the_users_id(user_client, user, demo_pipelines):
    response = post_job(user_client, {"pipeline": "sample_task", "input_data": {"x": 1}})

    assert response.status_code == 201, response.content
    assert response.json()["user_id"] == str(user.pk)
    job = Job.objects.get(pk=response.json()["job_id"])
    assert job.user_id == user.pk
    assert job.created_by == user


def test_session_user_may_name_their_own_user_id(user_client, user, demo_pipelines):
    response = post_job(user_client, {"pipeline": "sample_task", "input_data": {}, "user_id": str(user.pk)})

    assert response.status_code == 201
    assert Job.objects.get(pk=response.json()["job_id"]).user_id == user.pk


def test_session_user_submitting_for_another_user_gets_403(user_client, other_user, demo_pipelines):
    response = post_job(user_client, {"pipeline": "sample_task", "input_data": {}, "user_id": str(other_user.pk)})

    body = assert_error(response, 403, "permission_denied")
    assert "user_id" in body["details"]
    assert Job.objects.count() == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({"pipeline": "no-such-pipeline", "input_data": {}}, "pipeline", id="unknown-pipeline"),
        pytest.param({"input_data": {}}, "pipeline", id="missing-pipeline"),
        pytest.param({"pipeline": "sample_task"}, "input_data", id="missing-input"),
        pytest.param({"pipeline": "sample_task", "input_data": ["a", "b"]}, "input_data", id="input-list"),
        pytest.param({"pipeline": "sample_task", "input_data": "text"}, "input_data", id="input-string"),
        pytest.param({"pipeline": "sample_task", "input_data": None}, "input_data", id="input-null"),
        pytest.param({"pipeline": "sample_task", "input_data": {}, "priority": 11}, "priority", id="priority-11"),
        pytest.param({"pipeline": "sample_task", "input_data": {}, "priority": -1}, "priority", id="priority-neg"),
        pytest.param(
            {"pipeline": "sample_task", "input_data": {}, "username": "u" * 256}, "username", id="username-256"
        ),
        pytest.param({"pipeline": "sample_task", "input_data": {}, "user_id": "nope"}, "user_id", id="bad-uuid"),
        pytest.param({"pipeline": "sample_task", "input_data": {}, "max_attempts": 21}, "max_attempts", id="max-21"),
        pytest.param({"pipeline": "text-analysis", "input_data": {"html": 5}}, "input_data", id="schema"),
        pytest.param({"pipeline": "text-analysis", "input_data": {"title": "x"}}, "input_data", id="schema-anyof"),
    ],
)
def test_invalid_submission_is_a_400_validation_error_naming_the_field(service_client, demo_pipelines, body, field):
    response = post_job(service_client, body)

    envelope = assert_error(response, 400, "validation_error")
    assert list(envelope["details"]) == [field]
    messages = envelope["details"][field]
    assert isinstance(messages, list) and messages
    assert all(isinstance(m, str) and m for m in messages)
    assert Job.objects.count() == 0


def test_schema_errors_name_the_offending_input_field(service_client, demo_pipelines):
    response = post_job(service_client, {"pipeline": "text-analysis", "input_data": {"html": 5}})

    messages = assert_error(response, 400, "validation_error")["details"]["input_data"]
    assert any(m.startswith("html: ") for m in messages)


def test_malformed_json_is_a_400_malformed_request(service_client, demo_pipelines):
    response = service_client.post(
        JOBS_URL, data='{"pipeline": "sample_task", ', content_type="application/json", HTTP_X_REQUEST_ID=REQUEST_ID
    )

    assert_error(response, 400, "malformed_request")
    assert Job.objects.count() == 0


def test_body_over_the_upload_limit_is_a_413(service_client, demo_pipelines, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    body = {"pipeline": "sample_task", "input_data": {"text": "x" * 4096}}

    response = post_job(service_client, body)

    assert_error(response, 413, "payload_too_large")
    assert Job.objects.count() == 0


def test_submit_without_credentials_is_a_401(anon_client, demo_pipelines):
    response = post_job(anon_client, {"pipeline": "sample_task", "input_data": {}})

    assert_error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"] == "X-API-Secret"
    assert Job.objects.count() == 0


def test_submit_with_a_wrong_api_secret_is_a_401(demo_pipelines):
    client = APIClient()
    client.credentials(HTTP_X_API_SECRET="not-the-secret")

    response = post_job(client, {"pipeline": "sample_task", "input_data": {}})

    assert_error(response, 401, "authentication_failed")
    assert Job.objects.count() == 0


@pytest.mark.parametrize("url", [f"{JOBS_URL}{UNKNOWN_ID}/", f"{JOBS_URL}{UNKNOWN_ID}/result/"])
def test_reads_without_credentials_are_a_401(anon_client, db, url):
    assert_error(get(anon_client, url), 401, "not_authenticated")


def test_the_list_without_credentials_is_a_401_naming_the_missing_api_secret(anon_client, db):
    body = assert_error(get(anon_client, JOBS_URL), 401, "not_authenticated", seed_detail=True)

    assert body["detail"]["error"] == "InvalidAPISecret"


# --- list -------------------------------------------------------------------------


def test_list_returns_summaries_newest_first_without_input_data(service_client, db):
    now = timezone.now()
    jobs = [JobFactory(input_data={"secret": i}) for i in range(3)]
    for age, job in zip([3, 1, 2], jobs, strict=True):
        Job.objects.filter(pk=job.pk).update(created_at=now - timedelta(minutes=age))

    response = get(service_client, JOBS_URL)

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"jobs", "total", "limit", "offset", "total_estimated", "next", "previous"}
    assert (body["total"], body["limit"], body["offset"]) == (3, 50, 0)
    assert (body["next"], body["previous"]) == (None, None)
    assert [r["job_id"] for r in body["jobs"]] == [str(jobs[1].pk), str(jobs[2].pk), str(jobs[0].pk)]
    for summary in body["jobs"]:
        assert list(summary)[: len(SEED_SUMMARY_FIELDS)] == SEED_SUMMARY_FIELDS
        assert set(summary) == SUMMARY_FIELDS
    assert "secret" not in response.content.decode()


def test_list_shows_the_pipeline_by_name(service_client, db):
    JobFactory(pipeline=PipelineFactory(name="named-one"))

    assert get(service_client, JOBS_URL).json()["jobs"][0]["workflow_name"] == "named-one"


def test_list_pages_by_50_by_default(service_client, db):
    pipeline = PipelineFactory()
    Job.objects.bulk_create([JobFactory.build(pipeline=pipeline) for _ in range(51)])

    first = get(service_client, JOBS_URL).json()

    assert first["total"] == 51
    assert len(first["jobs"]) == 50
    assert first["previous"] is None
    assert "limit=50" in first["next"] and "offset=50" in first["next"]
    second = service_client.get(first["next"]).json()
    assert len(second["jobs"]) == 1
    assert second["next"] is None
    assert second["previous"] is not None
    seen = {r["job_id"] for r in first["jobs"]} | {r["job_id"] for r in second["jobs"]}
    assert len(seen) == 51


def test_list_honours_limit_and_offset(service_client, db):
    now = timezone.now()
    jobs = JobFactory.create_batch(5)
    for age, job in enumerate(jobs):
        Job.objects.filter(pk=job.pk).update(created_at=now - timedelta(minutes=age))

    body = get(service_client, f"{JOBS_URL}?limit=2&offset=1").json()

    assert body["total"] == 5
    assert [r["job_id"] for r in body["jobs"]] == [str(jobs[1].pk), str(jobs[2].pk)]


def test_list_serves_up_to_200_per_page(service_client, db):
    pipeline = PipelineFactory()
    Job.objects.bulk_create([JobFactory.build(pipeline=pipeline) for _ in range(201)])

    body = get(service_client, f"{JOBS_URL}?limit=200").json()

    assert body["total"] == 201
    assert len(body["jobs"]) == 200
    assert body["next"] is not None


@pytest.mark.parametrize("query", ["limit=201", "limit=0", "offset=-1"])
def test_list_rejects_limit_or_offset_out_of_range_with_a_422(service_client, db, query):
    assert_error(get(service_client, f"{JOBS_URL}?{query}"), 422, "validation_error", seed_detail=True)


def test_session_user_lists_only_their_own_jobs(user_client, user, other_user, db):
    own = {JobFactory(user_id=user.pk).pk, JobFactory(user_id=user.pk).pk}
    JobFactory(user_id=other_user.pk)
    JobFactory(user_id=None)

    body = get(user_client, JOBS_URL).json()

    assert body["total"] == 2
    assert {uuid.UUID(r["job_id"]) for r in body["jobs"]} == own


def test_session_user_cannot_widen_the_list_with_a_user_id_filter(user_client, user, other_user, db):
    JobFactory(user_id=other_user.pk)

    body = get(user_client, f"{JOBS_URL}?user_id={other_user.pk}").json()

    assert body["total"] == 0


def test_operator_lists_every_job(operator_user, user, db):
    JobFactory(user_id=user.pk)
    JobFactory(user_id=None)
    client = APIClient()
    client.force_login(operator_user)

    assert get(client, JOBS_URL).json()["total"] == 2


def test_staff_flag_alone_does_not_reveal_other_users_jobs(user, db):
    JobFactory(user_id=user.pk)
    staff = grant_role(UserFactory(username="staffer", is_staff=True), "submitter")
    client = APIClient()
    client.force_login(staff)

    assert get(client, JOBS_URL).json()["total"] == 0


def test_service_lists_every_users_jobs(service_client, user, other_user, db):
    JobFactory(user_id=user.pk)
    JobFactory(user_id=other_user.pk)
    JobFactory(user_id=None)

    assert get(service_client, JOBS_URL).json()["total"] == 3


# --- detail -----------------------------------------------------------------------


def test_detail_of_a_completed_job_has_stages_input_version_and_result_url(service_client, demo_pipelines):
    job = completed_job(demo_pipelines["text-analysis"], {"text": "Detail test. Two sentences!"})

    response = get(service_client, detail_url(job.pk))

    assert response.status_code == 200
    body = response.json()
    assert set(body) >= SUMMARY_FIELDS | DETAIL_EXTRA_FIELDS
    assert body["job_id"] == str(job.pk)
    assert body["status"] == "completed"
    assert body["input_data"] == {"text": "Detail test. Two sentences!"}
    assert body["pipeline_version"] == demo_pipelines["text-analysis"].version
    assert body["result_url"] == f"http://testserver{result_url(job.pk)}"
    assert [(s["name"], s["status"], s["attempts"], s["error"]) for s in body["stages"]] == [
        ("extract", "completed", 1, ""),
        ("stats", "completed", 1, ""),
    ]
    for stage in body["stages"]:
        assert {"name", "status", "attempts", "started", "finished", "error"} <= set(stage)
        assert stage["started"] is not None and stage["finished"] is not None


def test_detail_shows_the_latest_attempt_of_each_stage(service_client, db):
    job = JobFactory(status=JobStatus.FAILED, attempts=2)
    now = timezone.now()
    StageRun.objects.create(
        job=job,
        index=0,
        name="echo",
        stage_type="echo",
        attempt=1,
        started_at=now,
        status=StageRunStatus.FAILED,
        error="RuntimeError: first try",
    )
    StageRun.objects.create(
        job=job, index=0, name="echo", stage_type="echo", attempt=2, started_at=now, status=StageRunStatus.COMPLETED
    )

    stages = get(service_client, detail_url(job.pk)).json()["stages"]

    assert [(s["name"], s["status"], s["attempts"], s["error"]) for s in stages] == [("echo", "completed", 2, "")]


def test_detail_of_an_unfinished_job_has_no_result_url(service_client, db):
    job = JobFactory(status=JobStatus.QUEUED)

    body = get(service_client, detail_url(job.pk)).json()

    assert body["result_url"] is None
    assert body["stages"] == []


def test_session_user_sees_their_own_job_detail(user_client, user, db):
    job = JobFactory(user_id=user.pk)

    assert get(user_client, detail_url(job.pk)).json()["job_id"] == str(job.pk)


@pytest.mark.parametrize("make_url", [detail_url, result_url])
def test_another_users_job_is_a_404_not_a_403(user_client, other_user, db, make_url):
    job = JobFactory(user_id=other_user.pk, status=JobStatus.COMPLETED)
    JobResult.objects.create(job=job, result={"theirs": True})

    response = get(user_client, make_url(job.pk))

    assert_error(response, 404, "not_found")
    assert "theirs" not in response.content.decode()


@pytest.mark.parametrize("make_url", [detail_url, result_url])
@pytest.mark.parametrize("job_id", [uuid.uuid4(), "not-a-uuid", "12345"])
def test_unknown_or_malformed_job_id_is_a_404_not_found(service_client, db, make_url, job_id):
    assert_error(get(service_client, make_url(job_id)), 404, "not_found")


# --- result -----------------------------------------------------------------------


@pytest.mark.parametrize("status", [JobStatus.PENDING, JobStatus.SCHEDULED, JobStatus.QUEUED, JobStatus.PROCESSING])
def test_result_of_an_unfinished_job_is_404_result_not_ready(service_client, db, status):
    job = JobFactory(status=status)

    body = assert_error(get(service_client, result_url(job.pk)), 404, "result_not_ready")

    assert body["details"]["status"] == status


def test_result_of_a_failed_job_is_404_job_failed_with_its_error(service_client, db):
    job = JobFactory(status=JobStatus.FAILED, error_message="Stage 'fetch' failed: TimeoutError: slow")

    body = assert_error(get(service_client, result_url(job.pk)), 404, "job_failed")

    assert body["details"]["status"] == "failed"
    assert body["details"]["error_message"] == "Stage 'fetch' failed: TimeoutError: slow"


def test_result_of_a_cancelled_job_is_404_job_cancelled(service_client, db):
    job = JobFactory(status=JobStatus.CANCELLED)

    assert_error(get(service_client, result_url(job.pk)), 404, "job_cancelled")


def test_result_of_a_completed_job_is_returned_inline(service_client, demo_pipelines):
    job = completed_job(demo_pipelines["text-analysis"], {"text": "Alpha beta gamma. Delta!"})
    stored = JobResult.objects.get(job=job)

    response = get(service_client, result_url(job.pk))

    assert response.status_code == 200
    body = response.json()
    assert set(body) >= RESULT_FIELDS
    assert body["job_id"] == str(job.pk)
    assert body["result"] == stored.result
    assert body["result"]["words"] == 4
    assert body["metadata"] == {"pipeline": "text-analysis", "pipeline_version": job.pipeline_version}
    assert body["processing_time_ms"] == stored.processing_time_ms
    assert body["created_at"] is not None and body["expires_at"] is not None
    assert response["X-Request-ID"] == REQUEST_ID


def test_session_user_fetches_their_own_result(user_client, user, demo_pipelines):
    job = completed_job(demo_pipelines["sample_task"], {"k": "v"}, user_id=user.pk)

    response = get(user_client, result_url(job.pk))

    assert response.status_code == 200
    assert response.json()["result"]["input"] == {"k": "v"}


def test_result_stored_as_a_file_is_streamed_in_the_same_envelope_as_an_inline_one(service_client, db, settings):
    settings.RESULT_INLINE_MAX_BYTES = 32
    pipeline = PipelineFactory(config={"stages": [{"name": "pass", "type": "echo"}]})
    output = {"payload": "x" * 200}
    job = completed_job(pipeline, output)

    response = get(service_client, result_url(job.pk))

    assert response.status_code == 200
    assert response.streaming
    body = json.loads(b"".join(response.streaming_content))
    assert set(body) == {"job_id", "result", "metadata", "size_bytes", "processing_time_ms", "created_at", "expires_at"}
    assert body["job_id"] == str(job.pk)
    assert body["result"] == output
    stored = JobResult.objects.get(job=job)
    raw = stored.result_file.read()
    assert body["size_bytes"] == len(raw)
    assert response["Content-Type"] == "application/json"
    assert response["X-Result-Checksum"] == f"sha256={hashlib.sha256(raw).hexdigest()}"

    settings.RESULT_INLINE_MAX_BYTES = 1_000_000
    inline_job = completed_job(pipeline, output)
    inline = get(service_client, result_url(inline_job.pk)).json()
    assert set(inline) == set(body) and inline["result"] == body["result"]


def test_result_of_a_completed_job_whose_result_was_deleted_is_404_not_found(service_client, db):
    job = JobFactory(status=JobStatus.COMPLETED)

    assert_error(get(service_client, result_url(job.pk)), 404, "not_found")


# --- request ids and other errors --------------------------------------------------


def test_a_request_without_an_id_gets_a_generated_one_in_header_and_body(anon_client, db):
    response = anon_client.get(JOBS_URL)

    assert response.status_code == 401
    generated = response["X-Request-ID"]
    assert len(generated) == 32
    assert response.json()["request_id"] == generated


def test_an_unsafe_request_id_is_replaced(anon_client, db):
    response = anon_client.get(JOBS_URL, HTTP_X_REQUEST_ID="forged id\nwith newline")

    assert response["X-Request-ID"] != "forged id\nwith newline"
    assert response.json()["request_id"] == response["X-Request-ID"]


def test_unknown_api_path_is_a_json_404(service_client, db):
    assert_error(get(service_client, "/api/v1/no-such-endpoint/"), 404, "not_found")


def test_method_not_allowed_uses_the_error_envelope(service_client, db):
    job = JobFactory()

    response = service_client.put(detail_url(job.pk), {}, format="json", HTTP_X_REQUEST_ID=REQUEST_ID)

    assert_error(response, 405, "method_not_allowed")


# --- health -----------------------------------------------------------------------


def test_health_is_ok_without_credentials(client):
    response = client.get("/health")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_health_db_reports_the_database_vendor_to_an_operator(client, db, settings):
    response = client.get("/health/db", HTTP_X_API_SECRET=settings.JOBSITE_API_SECRET)

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": connection.vendor}
