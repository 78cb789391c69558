"""The LLM workflow service's contract (seeds 000/001), as its clients call it: seed-contracts.md, part A.

The dashboard's LLM Queue tab (`fetchLLMJobs`), scripts that submit workflows,
and anything that reads a job's status: `X-API-Secret` in, `{"detail": ...}`
errors out. Paths as the seed spells them, without a trailing slash.
"""

import importlib.util
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from jobs.models import Job, JobResult, JobStatus
from jobs.run import job_run
from tests import credentials
from tests.contracts import JOBSITE_SUMMARY_EXTRAS, SEED_JOB_SUMMARY
from tests.factories import JobFactory, PipelineFactory

from .conftest import REQUEST_ID, assert_request_id, fastapi_items, locs

JOBS = "/api/v1/jobs"
WORKFLOW = "/api/v1/workflow"
VALIDATE = "/api/v1/workflow/validate"
ROOT = Path(__file__).resolve().parents[2]

JOB_SUMMARY = SEED_JOB_SUMMARY  # in the seed's (001) order
SEED_STATUSES = ["pending", "queued", "processing", "completed", "failed"]
STATUS_FILTERS = {
    "running": {"queued", "processing"},
    "completed": {"completed"},
    "failed": {"failed"},
    "all": set(SEED_STATUSES),
}
# The LLM Queue tab's limit dropdown.
DROPDOWN = ["25", "50", "100", "200", "Today", "7 Days", "30 Days"]
VALID_VALUES = ["1-500", "Today", "7 Days", "30 Days"]


def secret(value: str | None = None) -> dict:
    return {"HTTP_X_API_SECRET": settings.JOBSITE_API_SECRET if value is None else value}


def get(client, path, params=None, **headers):
    return client.get(path, params or {}, HTTP_X_REQUEST_ID=REQUEST_ID, **{**secret(), **headers})


def post(client, path, body, **headers):
    return client.post(path, body, format="json", HTTP_X_REQUEST_ID=REQUEST_ID, **{**secret(), **headers})


def ok(response) -> dict:
    assert response.status_code == 200, response.content
    return response.json()


# -- the LLM Queue tab: fetchLLMJobs(statusFilter, limitResults) ------------------------------


def _today_start(now: datetime) -> datetime:
    return datetime.combine(now.date(), datetime.min.time(), tzinfo=UTC)


@pytest.fixture
def queue(db):
    """Jobs of every seed status at four ages; each created at its own instant (no ties).

    completed: 240 (more than the largest numeric dropdown value), failed: 60,
    queued and processing: 15 each, pending: 10. Returns (jobs, now).
    """
    now = timezone.now()
    if now - _today_start(now) < timedelta(minutes=2):  # the day must not turn mid-test
        pytest.skip("too close to 00:00 UTC")
    today = _today_start(now) + (now - _today_start(now)) / 2
    ages = [today, now - timedelta(days=3), now - timedelta(days=10), now - timedelta(days=40)]
    pipeline = PipelineFactory(name="summarize")
    counts = {"completed": 240, "failed": 60, "queued": 15, "processing": 15, "pending": 10}
    jobs = []
    for status, count in counts.items():
        for n in range(count):
            created = ages[n % 4] - timedelta(milliseconds=len(jobs))
            jobs.append(JobFactory.build(pipeline=pipeline, status=status, created_at=created))
    Job.objects.bulk_create(jobs)
    return jobs, now


def expected_page(jobs, now, status: str, limit_results: str) -> tuple[list[str], int, int]:
    """What the seed's service answers: (ids newest first, total, limit)."""
    matches = [job for job in jobs if job.status in STATUS_FILTERS[status]]
    if limit_results == "Today":
        matches = [job for job in matches if job.created_at >= _today_start(now)]
    elif limit_results in ("7 Days", "30 Days"):
        days = int(limit_results.split()[0])
        matches = [job for job in matches if job.created_at >= now - timedelta(days=days)]
    matches.sort(key=lambda job: job.created_at, reverse=True)
    limit = int(limit_results) if limit_results.isdigit() else 50
    return [str(job.pk) for job in matches[:limit]], len(matches), limit


@pytest.mark.parametrize("limit_results", DROPDOWN)
def test_fetch_llm_jobs_answers_every_dropdown_value_with_each_status(client, queue, limit_results):
    jobs, now = queue
    for status in STATUS_FILTERS:
        response = get(client, JOBS, {"status": status, "limit_results": limit_results})

        body = ok(response)
        ids, total, limit = expected_page(jobs, now, status, limit_results)
        assert [row["job_id"] for row in body["jobs"]] == ids, (status, limit_results)
        assert (body["total"], body["limit"], body["offset"]) == (total, limit, 0), (status, limit_results)
        assert {row["status"] for row in body["jobs"]} <= STATUS_FILTERS[status]


def test_fetch_llm_jobs_sending_only_the_limit_lists_every_status(client, queue):
    jobs, now = queue

    body = ok(get(client, JOBS, {"limit_results": "25"}))

    ids, total, _ = expected_page(jobs, now, "all", "25")
    assert [row["job_id"] for row in body["jobs"]] == ids
    assert body["total"] == total == len(jobs)


@pytest.mark.parametrize("encoded", ["7%20Days", "7+Days"])
def test_the_space_in_a_period_may_come_as_percent_20_or_plus(client, queue, encoded):
    jobs, now = queue

    body = ok(client.get(f"{JOBS}?limit_results={encoded}&status=failed", **secret()))

    ids, total, _ = expected_page(jobs, now, "failed", "7 Days")
    assert ([row["job_id"] for row in body["jobs"]], body["total"]) == (ids, total)


# -- GET /api/v1/jobs: the response models ----------------------------------------------------


def test_the_list_is_a_jobs_list_response_of_job_summaries(client, db):
    user_id = uuid.uuid4()
    job = JobFactory(
        status=JobStatus.FAILED,
        priority=7,
        user_id=user_id,
        username="alice",
        action="summarize",
        duration_ms=1234,
        error_message="stage failed",
        input_data={"prompt": "never listed"},
        started_at=timezone.now(),
        completed_at=timezone.now(),
    )
    JobResult.objects.create(job=job, result={"answer": "never listed"})

    response = get(client, JOBS)

    body = ok(response)
    assert {"jobs", "total", "limit", "offset"} <= set(body)
    assert (body["total"], body["limit"], body["offset"]) == (1, 50, 0)
    [row] = body["jobs"]
    assert list(row)[: len(JOB_SUMMARY)] == JOB_SUMMARY
    assert set(row) == set(JOB_SUMMARY) | JOBSITE_SUMMARY_EXTRAS
    assert "never listed" not in response.content.decode()
    assert "input_data" not in row and "result_data" not in row
    assert row["job_id"] == str(job.pk)
    assert row["workflow_name"] == job.pipeline.name
    assert (row["status"], row["priority"], row["user_id"]) == ("failed", 7, str(user_id))
    assert (row["username"], row["action"], row["duration_ms"], row["error_message"]) == (
        "alice",
        "summarize",
        1234,
        "stage failed",
    )
    for field in ("created_at", "started_at", "completed_at"):
        assert datetime.fromisoformat(row[field].replace("Z", "+00:00")).tzinfo is not None


def test_absent_optional_fields_are_null_not_empty(client, db):
    JobFactory(status=JobStatus.QUEUED, user_id=None, username="", action="", error_message="")

    [row] = ok(get(client, JOBS))["jobs"]

    for field in ("user_id", "username", "action", "started_at", "completed_at", "duration_ms", "error_message"):
        assert row[field] is None, field


def test_the_list_is_newest_first_and_total_counts_every_match_before_paging(client, db):
    pipeline = PipelineFactory()
    now = timezone.now()
    jobs = [JobFactory(pipeline=pipeline, created_at=now - timedelta(minutes=m)) for m in (5, 1, 3, 2, 4)]
    newest_first = [str(j.pk) for j in sorted(jobs, key=lambda j: j.created_at, reverse=True)]

    first = ok(get(client, JOBS, {"limit": "2"}))
    second = ok(get(client, JOBS, {"limit": "2", "offset": "2"}))

    assert [r["job_id"] for r in first["jobs"]] + [r["job_id"] for r in second["jobs"]] == newest_first[:4]
    assert (first["total"], first["limit"], second["offset"]) == (5, 2, 2)


def test_numeric_limit_results_replaces_limit_and_may_exceed_200(client, queue):
    body = ok(get(client, JOBS, {"limit_results": "230", "limit": "10", "status": "completed"}))

    assert (len(body["jobs"]), body["limit"], body["total"]) == (230, 230, 240)


def test_offset_applies_with_limit_results(client, queue):
    jobs, now = queue
    ids, _, _ = expected_page(jobs, now, "failed", "500")

    body = ok(get(client, JOBS, {"limit_results": "10", "offset": "5", "status": "failed"}))

    assert [r["job_id"] for r in body["jobs"]] == ids[5:15]
    assert (body["limit"], body["offset"]) == (10, 5)


def test_a_period_keeps_limit_and_offset(client, queue):
    jobs, now = queue
    ids, total, _ = expected_page(jobs, now, "completed", "30 Days")

    body = ok(get(client, JOBS, {"limit_results": "30 Days", "limit": "7", "offset": "3", "status": "completed"}))

    assert [r["job_id"] for r in body["jobs"]] == ids[3:10]
    assert (body["total"], body["limit"]) == (total, 7)


@pytest.mark.parametrize("limit_results", ["", None])
def test_an_empty_limit_results_is_the_same_as_none(client, queue, limit_results):
    params = {"status": "failed"} if limit_results is None else {"status": "failed", "limit_results": ""}

    body = ok(get(client, JOBS, params))

    assert (len(body["jobs"]), body["limit"], body["total"]) == (50, 50, 60)


def test_status_filter_is_accepted_as_a_synonym_of_status(client, queue):
    by_status = ok(get(client, JOBS, {"status": "running", "limit_results": "200"}))
    by_synonym = ok(get(client, JOBS, {"status_filter": "running", "limit_results": "200"}))

    assert by_synonym == by_status
    assert by_status["total"] == 30


def test_user_id_matches_exactly_and_jobs_without_one_never_match(client, db):
    wanted = uuid.uuid4()
    mine = JobFactory(user_id=wanted)
    JobFactory(user_id=uuid.uuid4())
    JobFactory(user_id=None)

    body = ok(get(client, JOBS, {"user_id": str(wanted)}))

    assert [row["job_id"] for row in body["jobs"]] == [str(mine.pk)]


# -- GET /api/v1/jobs: bounds and errors ------------------------------------------------------


@pytest.mark.parametrize("status", ["bogus", "Running", "RUNNING", "ALL", "done"])
def test_an_unknown_status_is_a_400_whose_detail_is_a_string_naming_it(client, db, status):
    response = get(client, JOBS, {"status": status})

    assert response.status_code == 400
    body = assert_request_id(response)
    assert isinstance(body["detail"], str)
    assert "status" in body["detail"] and repr(status) in body["detail"]


@pytest.mark.parametrize("value", ["0", "501", "-1", "1000"])
def test_an_integer_limit_results_outside_1_to_500_is_invalid_limit_results(client, db, value):
    response = get(client, JOBS, {"limit_results": value})

    assert response.status_code == 400
    detail = assert_request_id(response)["detail"]
    assert detail["error"] == "InvalidLimitResults"
    assert detail["limit_results"] == value
    assert isinstance(detail["message"], str) and detail["message"]
    assert "valid_values" not in detail


@pytest.mark.parametrize("value", ["today", "TODAY", "7 days", "7Days", "1 Day", "abc", "1.5", "Yesterday", " 5", "+5"])
def test_any_other_limit_results_is_invalid_limit_results_with_the_valid_values(client, db, value):
    response = get(client, JOBS, {"limit_results": value})

    assert response.status_code == 400
    detail = assert_request_id(response)["detail"]
    assert (detail["error"], detail["limit_results"], detail["valid_values"]) == (
        "InvalidLimitResults",
        value,
        VALID_VALUES,
    )


@pytest.mark.parametrize(
    ("param", "value"),
    [("limit", "0"), ("limit", "201"), ("limit", "-3"), ("limit", "ten"), ("offset", "-1"), ("offset", "x")],
)
def test_limit_and_offset_out_of_bounds_are_a_422(client, db, param, value):
    response = get(client, JOBS, {param: value})

    assert response.status_code == 422
    assert locs(assert_request_id(response)) == [["query", param]]


@pytest.mark.parametrize(("limit", "served"), [("1", 1), ("200", 200)])
def test_limit_bounds_are_served(client, queue, limit, served):
    assert len(ok(get(client, JOBS, {"limit": limit}))["jobs"]) == served


def test_a_malformed_user_id_is_a_400(client, db):
    response = get(client, JOBS, {"user_id": "not-a-uuid"})

    assert response.status_code == 400
    assert "user_id" in assert_request_id(response)["detail"]


def test_an_unknown_query_parameter_is_a_400(client, db):
    response = get(client, JOBS, {"statusFilter": "running"})

    assert response.status_code == 400
    assert "statusFilter" in assert_request_id(response)["details"]


# -- the shared secret ------------------------------------------------------------------------

ENDPOINTS = [
    ("get", JOBS, None),
    ("get", "/api/v1/status/0b6f2a52-5f7e-4d0e-a0c4-3d5e8f2b9c10", None),
    ("post", WORKFLOW, {"workflow_name": "sample_task", "input_data": {}}),
    ("post", VALIDATE, {"workflow_name": "sample_task", "input_data": {}}),
]


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS, ids=[f"{m} {p[:22]}" for m, p, _ in ENDPOINTS])
@pytest.mark.parametrize("sent", ["wrong", "missing", "empty"])
def test_a_wrong_or_missing_secret_is_a_401_invalid_api_secret(client, demo_pipelines, method, path, body, sent):
    headers = {"wrong": secret("not-the-secret"), "missing": {}, "empty": secret("")}[sent]

    response = getattr(client, method)(path, body, format="json", HTTP_X_REQUEST_ID=REQUEST_ID, **headers)

    assert response.status_code == 401
    detail = assert_request_id(response)["detail"]
    assert detail["error"] == "InvalidAPISecret"
    assert isinstance(detail["message"], str) and detail["message"]
    assert not Job.objects.exists()


@pytest.mark.parametrize(
    ("environment", "configured"),
    [
        ({"LLM_WEBHOOK_SECRET": "llm-only"}, "llm-only"),
        ({"JOBSITE_API_SECRET": "", "LLM_WEBHOOK_SECRET": "llm-only"}, "llm-only"),
        ({"JOBSITE_API_SECRET": "jobsite", "LLM_WEBHOOK_SECRET": "llm-only"}, "jobsite"),
        ({}, ""),
    ],
)
def test_llm_webhook_secret_is_the_secret_when_jobsite_api_secret_is_unset(monkeypatch, environment, configured):
    monkeypatch.delenv("JOBSITE_API_SECRET", raising=False)
    monkeypatch.delenv("LLM_WEBHOOK_SECRET", raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    spec = importlib.util.spec_from_file_location("settings_probe", ROOT / "jobsite" / "settings.py")
    probe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(probe)  # the settings module as a process started with this environment reads it

    assert configured == probe.JOBSITE_API_SECRET


def test_the_secrets_holder_sees_every_users_jobs(client, user, other_user):
    JobFactory(user_id=user.pk)
    JobFactory(user_id=other_user.pk)
    JobFactory(user_id=None)

    assert ok(get(client, JOBS))["total"] == 3


# -- POST /api/v1/workflow ----------------------------------------------------------------------

FULL_REQUEST = {
    "workflow_name": "text-analysis",
    "user_id": "6f1c3c1e-8f0a-4b39-9a53-0c2f7b0c9a11",
    "input_data": {"text": "Summarize this. Please."},
    "webhook_url": "https://hooks.example.com/llm",
    "webhook_secret": "whsec-not-returned",
    "priority": 4,
    "debug_mode": True,
    "username": "alice",
    "action": "summarize",
}


@pytest.mark.django_db(transaction=True)
def test_a_workflow_submission_creates_a_job_queued_now(client, demo_pipelines, stub_broker):
    before = timezone.now()

    response = post(client, WORKFLOW, FULL_REQUEST)

    assert response.status_code == 201, response.content
    body = response.json()
    assert "whsec-not-returned" not in response.content.decode()
    job = Job.objects.get(pk=body["job_id"])
    assert (body["workflow_name"], body["status"]) == ("text-analysis", "queued")
    assert before <= job.queued_at <= timezone.now()
    assert body["queued_at"] is not None
    assert (job.user_id, job.priority, job.debug_mode) == (uuid.UUID(FULL_REQUEST["user_id"]), 4, True)
    assert (job.username, job.action, job.webhook_url) == ("alice", "summarize", "https://hooks.example.com/llm")
    assert job.webhook_secret == "whsec-not-returned"
    assert job.input_data == FULL_REQUEST["input_data"]
    for field in ("user_id", "priority", "debug_mode", "username", "action", "webhook_url", "input_data"):
        assert body[field] == FULL_REQUEST[field], field


def test_a_minimal_submission_takes_the_defaults(client, demo_pipelines):
    response = post(
        client,
        WORKFLOW,
        {
            "workflow_name": "sample_task",
            "input_data": {},
            "user_id": None,
            "webhook_secret": None,
            "username": None,
            "action": None,
        },
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["priority"], body["debug_mode"]) == (0, False)
    for field in ("user_id", "username", "action", "webhook_url"):
        assert body[field] is None, field


@pytest.mark.parametrize("field", ["username", "action"])
def test_username_and_action_may_be_255_characters(client, demo_pipelines, field):
    response = post(client, WORKFLOW, {"workflow_name": "sample_task", "input_data": {}, field: "x" * 255})

    assert response.status_code == 201
    assert response.json()[field] == "x" * 255


@pytest.mark.parametrize(
    ("change", "loc"),
    [
        pytest.param({"workflow_name": None}, ["body", "workflow_name"], id="workflow_name-missing"),
        pytest.param({"workflow_name": "w" * 101}, ["body", "workflow_name"], id="workflow_name-101"),
        pytest.param({"workflow_name": "no-such-workflow"}, ["body", "workflow_name"], id="workflow_name-unknown"),
        pytest.param({"input_data": None}, ["body", "input_data"], id="input_data-missing"),
        pytest.param({"input_data": ["a"]}, ["body", "input_data"], id="input_data-list"),
        pytest.param({"input_data": {"title": 5}}, ["body", "input_data"], id="input_data-schema"),
        pytest.param({"priority": 11}, ["body", "priority"], id="priority-11"),
        pytest.param({"priority": -1}, ["body", "priority"], id="priority-negative"),
        pytest.param({"priority": "high"}, ["body", "priority"], id="priority-text"),
        pytest.param({"username": "u" * 256}, ["body", "username"], id="username-256"),
        pytest.param({"action": "a" * 256}, ["body", "action"], id="action-256"),
        pytest.param({"user_id": "not-a-uuid"}, ["body", "user_id"], id="user_id-malformed"),
        pytest.param({"webhook_url": "not a url"}, ["body", "webhook_url"], id="webhook_url-malformed"),
        pytest.param({"debug_mode": "sometimes"}, ["body", "debug_mode"], id="debug_mode-text"),
    ],
)
@pytest.mark.parametrize("path", [WORKFLOW, VALIDATE])
def test_an_invalid_submission_is_a_422_naming_the_field_and_creates_nothing(client, demo_pipelines, path, change, loc):
    body = {"workflow_name": "text-analysis", "input_data": {"text": "hi"}, **change}
    required = ("workflow_name", "input_data")
    body = {key: value for key, value in body.items() if value is not None or key not in required}  # None: left out

    response = post(client, path, body)

    assert response.status_code == 422, response.content
    assert loc in locs(assert_request_id(response))
    assert not Job.objects.exists()


def test_a_missing_workflow_name_is_reported_as_missing(client, demo_pipelines):
    response = post(client, WORKFLOW, {"input_data": {}})

    [item] = fastapi_items(response.json())
    assert (item["loc"], item["type"]) == (["body", "workflow_name"], "missing")


def test_a_body_that_is_not_json_is_a_422(client, demo_pipelines):
    response = client.post(
        WORKFLOW, data="{not json", content_type="application/json", HTTP_X_REQUEST_ID=REQUEST_ID, **secret()
    )

    assert response.status_code == 422
    assert locs(assert_request_id(response)) == [["body"]]


def test_the_submission_is_audited_as_a_job_creation(client, demo_pipelines):
    from audit.models import AuditLog

    response = post(client, WORKFLOW, {"workflow_name": "sample_task", "input_data": {}})

    row = AuditLog.objects.get(action="jobs.job.create")
    assert (row.resource_id, row.request_id, row.principal) == (response.json()["job_id"], REQUEST_ID, "service")


# -- POST /api/v1/workflow/validate ---------------------------------------------------------


def test_validate_answers_valid_and_writes_nothing(client, demo_pipelines):
    response = post(client, VALIDATE, FULL_REQUEST)

    assert response.status_code == 200
    assert response.json() == {"valid": True}
    assert not Job.objects.exists()


# -- GET /api/v1/status/{job_id} ------------------------------------------------------------


def test_status_carries_the_full_job_and_its_result(client, demo_pipelines):
    response = post(client, WORKFLOW, {**FULL_REQUEST, "debug_mode": False})
    job_id = response.json()["job_id"]
    job_run(job_id=job_id)

    response = get(client, f"/api/v1/status/{job_id}")

    body = ok(response)
    assert (body["job_id"], body["workflow_name"], body["status"]) == (job_id, "text-analysis", "completed")
    assert body["input_data"] == FULL_REQUEST["input_data"]
    assert body["result_data"]["sentences"] == 2
    assert body["result_data"] == JobResult.objects.get(job_id=job_id).result
    assert set(JOB_SUMMARY) <= set(body)
    assert body["duration_ms"] is not None and body["completed_at"] is not None
    assert [stage["name"] for stage in body["stages"]] == ["extract", "stats"]


def test_status_of_an_unfinished_job_has_no_result_data(client, db):
    job = JobFactory(status=JobStatus.QUEUED)

    body = ok(get(client, f"/api/v1/status/{job.pk}/"))

    assert (body["status"], body["result_data"]) == ("queued", None)


def test_status_of_an_unknown_job_is_a_404(client, db):
    response = get(client, f"/api/v1/status/{uuid.uuid4()}")

    assert response.status_code == 404
    assert assert_request_id(response)["detail"] == "Job not found."


@pytest.mark.parametrize("job_id", ["123", "not-a-uuid"])
def test_status_of_an_id_that_is_not_a_uuid_is_a_422(client, db, job_id):
    response = get(client, f"/api/v1/status/{job_id}")

    assert response.status_code == 422
    assert locs(assert_request_id(response)) == [["path", "job_id"]]


def test_a_user_reads_only_their_own_jobs_status(client, user, other_user):
    theirs = JobFactory(user_id=other_user.pk)
    mine = JobFactory(user_id=user.pk)
    headers = credentials.jwt_for(user)

    assert client.get(f"/api/v1/status/{mine.pk}", **headers).status_code == 200
    assert client.get(f"/api/v1/status/{theirs.pk}", **headers).status_code == 404


# -- debug_mode ---------------------------------------------------------------------------------


def test_debug_mode_keeps_every_stage_output_and_the_jobs_event_log(client, demo_pipelines):
    job_id = post(client, WORKFLOW, FULL_REQUEST).json()["job_id"]
    job_run(job_id=job_id)

    debug = ok(get(client, f"/api/v1/status/{job_id}"))["debug"]

    outputs = {run["name"]: run["output"] for run in debug["stage_runs"]}
    assert set(outputs) == {"extract", "stats"}
    assert outputs["stats"] == JobResult.objects.get(job_id=job_id).result
    assert outputs["extract"] is not None
    assert [event["type"] for event in debug["events"]] == ["job.created", "job.started", "job.completed"]


def test_without_debug_mode_the_job_has_no_debug_log(client, demo_pipelines):
    job_id = post(client, WORKFLOW, {**FULL_REQUEST, "debug_mode": False}).json()["job_id"]
    job_run(job_id=job_id)

    body = ok(get(client, f"/api/v1/status/{job_id}"))

    assert (body["debug_mode"], body["debug"]) == (False, None)
