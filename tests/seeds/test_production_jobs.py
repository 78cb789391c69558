"""The production job system's contract (seed 002), as its clients call it: seed-contracts.md, part B.

Its paths live under jobsite's `/api/v1/`: pipelines by numeric id, jobs by
`pipeline_id`, results, login and refresh, API keys with permission names,
the audit log's date range, user and resource filters, public health. (Its
webhook endpoints are the webhooks app's.)
"""

from datetime import timedelta

import pytest
from django.db import models
from django.utils import timezone
from rest_framework.test import APIClient

from audit.models import AuditLog
from jobs.models import Job
from jobs.run import job_run
from pipelines.models import Pipeline
from tests import credentials
from tests.conftest import grant_role
from tests.factories import PipelineFactory, UserFactory

from .conftest import REQUEST_ID, assert_request_id

PASSWORD = "correct horse battery staple"
CONFIG = {"input_schema": {"type": "object"}, "stages": [{"name": "only", "type": "echo"}], "max_attempts": 2}


@pytest.fixture
def operator(operator_user):
    client = APIClient()
    client.credentials(**credentials.jwt_for(operator_user), HTTP_X_REQUEST_ID=REQUEST_ID)
    return client


@pytest.fixture
def pipeline(operator):
    response = operator.post("/api/v1/pipelines", {"name": "ocr", "description": "d", "config": CONFIG}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


# -- /pipelines and /pipelines/{id} -----------------------------------------------------------------


def test_a_created_pipeline_has_a_numeric_id_that_lists_show(operator, pipeline):
    assert isinstance(pipeline["id"], int)
    listed = operator.get("/api/v1/pipelines").json()["results"]
    assert [(p["id"], p["name"]) for p in listed] == [(pipeline["id"], "ocr")]


@pytest.mark.parametrize("by", ["id", "name"])
def test_get_put_and_delete_a_pipeline_by_id_or_name(operator, pipeline, by):
    path = f"/api/v1/pipelines/{pipeline[by]}"

    assert operator.get(path).json()["name"] == "ocr"
    updated = operator.put(path, {"name": "ocr", "description": "new", "config": CONFIG}, format="json")
    assert (updated.status_code, updated.json()["description"]) == (200, "new")
    assert operator.delete(path).status_code == 204
    assert not Pipeline.objects.filter(name="ocr").exists()


def test_a_name_made_of_digits_is_found_by_name_first(operator, pipeline):
    digits = PipelineFactory(name=str(pipeline["id"]))

    assert operator.get(f"/api/v1/pipelines/{pipeline['id']}").json()["id"] == digits.pk
    assert operator.get(f"/api/v1/pipelines/{digits.pk}").json()["id"] == digits.pk


@pytest.mark.parametrize("lookup", ["999999", "no-such-pipeline", "9" * 40])
def test_an_unknown_pipeline_id_or_name_is_a_404(operator, pipeline, lookup):
    response = operator.get(f"/api/v1/pipelines/{lookup}")

    assert response.status_code == 404
    assert_request_id(response)


def test_the_outline_readers_see_the_id_too(user, pipeline):
    body = APIClient().get(f"/api/v1/pipelines/{pipeline['id']}", **credentials.jwt_for(user)).json()

    assert (body["id"], body["name"]) == (pipeline["id"], "ocr")
    assert "config" not in body


# -- jobs by pipeline_id; results -------------------------------------------------------------------


def test_a_job_created_with_pipeline_id_snapshots_that_pipelines_config(operator, service_client, pipeline):
    response = service_client.post(
        "/api/v1/jobs", {"pipeline_id": pipeline["id"], "input_data": {"page": 1}}, format="json"
    )

    assert response.status_code == 201, response.content
    job = Job.objects.get(pk=response.json()["job_id"])
    assert (job.pipeline_id, job.pipeline_config, job.pipeline_version) == (pipeline["id"], CONFIG, 1)
    assert response.json()["workflow_name"] == "ocr"


@pytest.mark.parametrize(
    ("pipeline_id", "problem"),
    [(999_999, "missing"), (0, "zero"), ("abc", "text"), (None, "inactive")],
)
def test_a_pipeline_id_that_names_no_active_pipeline_is_a_400(service_client, pipeline, pipeline_id, problem):
    if problem == "inactive":
        Pipeline.objects.filter(pk=pipeline["id"]).update(is_active=False)
        pipeline_id = pipeline["id"]

    response = service_client.post(
        "/api/v1/jobs/", {"pipeline_id": pipeline_id, "input_data": {}}, format="json", HTTP_X_REQUEST_ID=REQUEST_ID
    )

    assert response.status_code == 400
    assert "pipeline_id" in assert_request_id(response)["details"]
    assert not Job.objects.exists()


def test_pipeline_id_and_a_pipeline_name_must_agree(service_client, pipeline, demo_pipelines):
    agreeing = {"pipeline_id": pipeline["id"], "pipeline": "ocr", "input_data": {}}
    disagreeing = {"pipeline_id": pipeline["id"], "workflow_name": "sample_task", "input_data": {}}

    assert service_client.post("/api/v1/jobs/", agreeing, format="json").status_code == 201
    refused = service_client.post("/api/v1/jobs/", disagreeing, format="json")
    assert refused.status_code == 400
    assert {"pipeline_id", "workflow_name"} <= set(refused.json()["details"])


def test_the_result_is_a_404_until_the_job_completes(service_client, pipeline):
    job_id = service_client.post(
        "/api/v1/jobs/", {"pipeline_id": pipeline["id"], "input_data": {"page": 2}}, format="json"
    ).json()["job_id"]

    waiting = service_client.get(f"/api/v1/jobs/{job_id}/result")
    job_run(job_id=job_id)
    done = service_client.get(f"/api/v1/jobs/{job_id}/result")

    assert (waiting.status_code, waiting.json()["error"]) == (404, "result_not_ready")
    assert done.status_code == 200
    assert (done.json()["job_id"], done.json()["result"]) == (job_id, {"page": 2})


# -- auth: login, refresh, API keys, permissions ---------------------------------------------------


def test_login_returns_a_jwt_and_refresh_renews_it(user):
    credentials.remember(PASSWORD)
    client = APIClient()

    tokens = client.post("/api/v1/auth/login", {"username": "alice", "password": PASSWORD}, format="json").json()
    renewed = client.post("/api/v1/auth/refresh", {"refresh": credentials.remember(tokens["refresh"])}, format="json")

    credentials.remember(tokens["access"])
    assert renewed.status_code == 200
    access = credentials.remember(renewed.json()["access"])
    assert client.get("/api/v1/jobs", HTTP_AUTHORIZATION=f"Bearer {access}").status_code == 200


@pytest.mark.parametrize("field", ["permissions", "scopes"])
def test_an_api_key_is_created_with_permission_names(user, field):
    client = APIClient()

    response = client.post(
        "/api/v1/auth/api-keys", {"name": "ci", field: ["jobs:read"]}, format="json", **credentials.jwt_for(user)
    )

    assert response.status_code == 201, response.content
    body = response.json()
    key = credentials.remember(body["key"])
    assert body["scopes"] == ["jobs:read"]
    assert client.get("/api/v1/jobs", HTTP_X_API_KEY=key).status_code == 200
    refused = client.post("/api/v1/jobs", {"pipeline": "x", "input_data": {}}, format="json", HTTP_X_API_KEY=key)
    assert refused.status_code == 403


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "ci", "permissions": ["jobs:everything"]}, "permissions"),
        ({"name": "ci", "permissions": ["jobs:read"], "scopes": ["jobs:create"]}, "permissions"),
    ],
)
def test_unknown_or_contradicting_permissions_are_a_400(user, body, field):
    response = APIClient().post("/api/v1/auth/api-keys", body, format="json", **credentials.jwt_for(user))

    assert response.status_code == 400
    assert field in response.json()["details"]


# -- /audit/logs: date range, user, resource; paginated ------------------------------------------


@pytest.fixture
def audit_rows(db):
    AuditLog.objects.all()._purge()
    alice = UserFactory(username="alice-audited")
    now = timezone.now()
    rows = {
        "old": AuditLog.objects.create(action="jobs.job.create", resource_type="job", resource_id="j1", user=alice),
        "mid": AuditLog.objects.create(action="jobs.job.cancel", resource_type="job", resource_id="j2"),
        "new": AuditLog.objects.create(action="pipelines.pipeline.update", resource_type="pipeline", resource_id="p"),
    }
    for age, row in zip((30, 20, 10), rows.values(), strict=True):
        # The audit log's own queryset refuses updates: a test ages its rows past it.
        models.QuerySet.update(AuditLog.objects.filter(pk=row.pk), timestamp=now - timedelta(days=age))
    return rows, alice, now


@pytest.fixture
def auditor(db):
    client = APIClient()
    client.credentials(**credentials.jwt_for(grant_role(UserFactory(username="auditor"), "auditor")))
    return client


def _ids(response) -> set[int]:
    assert response.status_code == 200, response.content
    return {row["id"] for row in response.json()["results"]}


def test_audit_logs_filter_by_a_date_range(auditor, audit_rows):
    rows, _, now = audit_rows
    since, until = (now - timedelta(days=25)).isoformat(), (now - timedelta(days=15)).isoformat()

    assert _ids(auditor.get("/api/v1/audit/logs", {"start_date": since, "end_date": until})) == {rows["mid"].pk}
    assert _ids(auditor.get("/api/v1/audit/logs", {"since": since, "until": until})) == {rows["mid"].pk}


def test_audit_logs_filter_by_user_id_and_show_it(auditor, audit_rows):
    rows, alice, _ = audit_rows

    response = auditor.get("/api/v1/audit/logs", {"user_id": str(alice.pk)})

    assert _ids(response) == {rows["old"].pk}
    assert response.json()["results"][0]["user_id"] == str(alice.pk)


def test_audit_logs_filter_by_resource(auditor, audit_rows):
    rows, _, _ = audit_rows

    assert _ids(auditor.get("/api/v1/audit/logs", {"resource_type": "pipeline"})) == {rows["new"].pk}
    assert _ids(auditor.get("/api/v1/audit/logs", {"resource_type": "job", "resource_id": "j2"})) == {rows["mid"].pk}


def test_audit_logs_are_paginated(auditor, audit_rows):
    body = auditor.get("/api/v1/audit/logs", {"limit": "1", "action": "jobs.*"}).json()

    assert (body["count"], len(body["results"])) == (2, 1)
    assert body["next"] is not None


def test_a_bad_date_is_a_400(auditor, audit_rows):
    response = auditor.get("/api/v1/audit/logs", {"start_date": "last week"}, HTTP_X_REQUEST_ID=REQUEST_ID)

    assert response.status_code == 400
    assert "start_date" in assert_request_id(response)["details"]


# -- only health is public ---------------------------------------------------------------------------


def test_health_queue_is_public_and_its_detail_is_too_when_configured_so(db, settings):
    assert APIClient().get("/health/queue").json() == {"status": "ok"}  # up/down only, by default

    settings.HEALTH_DETAIL_PUBLIC = True
    response = APIClient().get("/health/queue")

    assert response.status_code == 200
    assert {"queues", "processed", "workers"} <= set(response.json())


@pytest.mark.parametrize("path", ["/api/v1/pipelines", "/api/v1/jobs", "/api/v1/audit/logs", "/api/v1/auth/api-keys"])
def test_everything_else_needs_a_caller(db, path):
    response = APIClient().get(path, HTTP_X_REQUEST_ID=REQUEST_ID)

    assert response.status_code == 401
    assert_request_id(response)
