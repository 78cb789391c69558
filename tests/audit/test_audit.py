"""The audit log: capture, redaction, query API, admin, commands, retention."""

import json
import logging
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import models
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import ApiKey
from audit.models import AuditLog
from jobs.models import Job
from tests import credentials
from tests.conftest import grant_role
from tests.factories import JobFactory, UserFactory

LOGS_URL = "/api/v1/audit/logs/"


def only_row(**filters) -> AuditLog:
    rows = list(AuditLog.objects.filter(**filters))
    assert len(rows) == 1, rows
    return rows[0]


@pytest.fixture
def auditor(db):
    return grant_role(UserFactory(username="auditor"), "auditor")


def test_api_read_produces_exactly_one_row_with_principal_action_and_request_id(user):
    response = APIClient().get("/api/v1/jobs/", HTTP_X_REQUEST_ID="audit-1", **credentials.jwt_for(user))
    assert response.status_code == 200

    row = only_row()
    assert (row.principal, row.principal_type, row.user_id) == ("alice", "user", user.pk)
    assert row.action == "jobs.job.list"
    assert row.request_id == "audit-1"
    assert (row.success, row.status_code) == (True, 200)
    assert row.request_details["method"] == "GET"
    assert row.request_details["path"] == "/api/v1/jobs/"
    assert row.duration_ms is not None


def test_submission_has_one_row_written_by_the_service_and_completed_by_the_middleware(service_client, demo_pipelines):
    AuditLog.objects.all()._purge()
    response = service_client.post(
        "/api/v1/jobs/", {"pipeline": "sample_task", "input_data": {"n": 1}}, format="json", HTTP_X_REQUEST_ID="sub-1"
    )
    assert response.status_code == 201

    row = only_row()
    assert (row.principal, row.principal_type) == ("service", "service")
    assert (row.action, row.resource_type, row.resource_id) == ("jobs.job.create", "job", response.json()["job_id"])
    assert (row.status_code, row.success, row.request_id) == (201, True, "sub-1")
    assert row.request_details["body"]["data"] == {"pipeline": "sample_task", "input_data": {"n": 1}}


def test_api_key_principal_is_recorded_by_prefix(user):
    headers = credentials.api_key_for(user)
    prefix = ApiKey.objects.get(user=user).prefix
    AuditLog.objects.all()._purge()
    APIClient().get("/api/v1/jobs/", **headers)
    row = only_row()
    assert (row.principal, row.principal_type, row.user_id) == (f"key:{prefix}", "api_key", user.pk)


@pytest.mark.parametrize(
    ("method", "url", "body", "status", "action"),
    [
        ("post", "/api/v1/jobs/", {"pipeline": "nope", "input_data": {}}, 400, "jobs.job.create"),
        ("get", "/api/v1/jobs/9b2f6a55-1111-4222-8333-444455556666/", None, 404, "jobs.job.retrieve"),
    ],
)
def test_failed_requests_are_recorded_as_failures(user, method, url, body, status, action):
    response = getattr(APIClient(), method)(url, body, format="json", **credentials.jwt_for(user))
    assert response.status_code == status
    row = only_row()
    assert (row.action, row.success, row.status_code) == (action, False, status)
    assert row.error_message.startswith(response.json()["error"])


def test_unauthenticated_request_is_recorded_as_anonymous(db):
    assert APIClient().get("/api/v1/jobs/").status_code == 401
    row = only_row()
    assert (row.principal, row.principal_type, row.success, row.status_code) == ("anonymous", "anonymous", False, 401)


def test_secrets_in_headers_query_and_body_are_never_stored(settings, demo_pipelines):
    secret_values = ["hunter2-password-value", "whsec-value-123", "tok-value-456", "qs-key-value-789"]
    body = {
        "pipeline": "sample_task",
        "input_data": {"password": secret_values[0], "nested": [{"access_token": secret_values[2]}]},
        "webhook_secret": secret_values[1],
    }
    response = APIClient().post(
        f"/api/v1/jobs/?api_key={secret_values[3]}",
        body,
        format="json",
        HTTP_X_API_SECRET=settings.JOBSITE_API_SECRET,
        HTTP_AUTHORIZATION="Bearer should-not-be-stored",
    )
    assert response.status_code in (201, 400)

    stored = json.dumps(list(AuditLog.objects.values()), default=str)
    for value in [*secret_values, settings.JOBSITE_API_SECRET, "should-not-be-stored"]:
        assert value not in stored
    row = AuditLog.objects.get(request_id=response["X-Request-ID"])
    assert row.request_details["query"] == {"api_key": "[REDACTED]"}
    assert row.request_details["body"]["data"]["input_data"]["password"] == "[REDACTED]"
    assert row.request_details["body"]["data"]["webhook_secret"] == "[REDACTED]"


def test_large_bodies_are_truncated_with_their_size(service_client, demo_pipelines):
    text = "word " * 5000
    service_client.post("/api/v1/jobs/", {"pipeline": "text-analysis", "input_data": {"text": text}}, format="json")
    body = AuditLog.objects.get(action="jobs.job.create").request_details["body"]
    assert body["truncated"] is True
    assert body["size"] > 25_000
    assert len(body["preview"]) == 4096


def test_audit_write_failure_never_fails_the_request(user, monkeypatch, caplog):
    def broken(**kwargs):
        raise RuntimeError("audit table unavailable")

    monkeypatch.setattr(AuditLog.objects, "create", broken)
    with caplog.at_level(logging.ERROR):
        response = APIClient().get("/api/v1/jobs/", **credentials.jwt_for(user))
    assert response.status_code == 200
    assert "Could not write the audit row" in caplog.text


def test_a_state_change_and_its_audit_row_commit_or_roll_back_together(demo_pipelines, monkeypatch):
    from django.db import IntegrityError

    from jobs import services

    real_entries = services.audit_entries

    def unstorable(**kwargs):
        entries = real_entries(**kwargs)
        for entry in entries:
            entry.action = None  # the audit insert fails (NOT NULL)
        return entries

    monkeypatch.setattr(services, "audit_entries", unstorable)
    with pytest.raises(IntegrityError):
        services.job_submit(submission=services.JobSubmission(pipeline="sample_task", input_data={}))
    assert not Job.objects.exists()


def test_admin_action_leaves_a_row(admin_client, admin_user, user):
    credentials.api_key_for(user)
    api_key = ApiKey.objects.get(user=user)
    AuditLog.objects.all()._purge()
    response = admin_client.post(
        "/admin/accounts/apikey/",
        {"action": "revoke_keys", "_selected_action": [api_key.pk]},
    )
    assert response.status_code == 302
    row = only_row(action="admin.api_key.revoke")
    assert (row.principal, row.resource_id) == (admin_user.username, api_key.prefix)


def test_commands_leave_rows(user):
    call_command("create_api_key", "alice", "--name", "cmd", stdout=StringIO())
    row = only_row(action="command.create_api_key.create")
    assert (row.principal, row.principal_type) == ("command:create_api_key", "system")
    assert row.resource_id == ApiKey.objects.get(name="cmd").prefix

    call_command("install_demo_pipelines", stdout=StringIO())
    actions = set(AuditLog.objects.filter(principal="command:install_demo_pipelines").values_list("action", flat=True))
    assert actions == {"command.install_demo_pipelines.create"}


def test_rows_cannot_be_changed_or_deleted(user):
    APIClient().get("/api/v1/jobs/", **credentials.jwt_for(user))
    row = AuditLog.objects.get()
    row.action = "forged"
    with pytest.raises(PermissionError):
        row.save()
    with pytest.raises(PermissionError):
        row.delete()
    with pytest.raises(PermissionError):
        AuditLog.objects.update(action="forged")
    with pytest.raises(PermissionError):
        AuditLog.objects.all().delete()
    assert AuditLog.objects.get().action == "jobs.job.list"


def test_reading_the_log_needs_audit_read(user, auditor):
    client = APIClient()
    assert client.get(LOGS_URL, **credentials.jwt_for(user)).status_code == 403
    assert client.get(LOGS_URL, **credentials.jwt_for(auditor)).status_code == 200
    assert client.get(LOGS_URL, **credentials.api_key_for(auditor, scopes=["jobs:read"])).status_code == 403
    assert client.get(LOGS_URL, **credentials.api_key_for(auditor, scopes=["audit:read"])).status_code == 200


def _backdate(row_ids, when):
    models.QuerySet.update(AuditLog.objects.filter(pk__in=row_ids), timestamp=when)


def test_filters_and_pagination(user, other_user, auditor):
    client = APIClient()
    client.get("/api/v1/jobs/", **credentials.jwt_for(user))
    job = JobFactory(user_id=other_user.pk)
    client.get(f"/api/v1/jobs/{job.pk}/", **credentials.jwt_for(other_user))
    client.get("/api/v1/jobs/not-a-job/", **credentials.jwt_for(other_user))
    old = AuditLog.objects.get(principal="alice")
    _backdate([old.pk], timezone.now() - timedelta(days=3))
    auditor_headers = credentials.jwt_for(auditor)

    def ids(query):
        response = client.get(LOGS_URL + query, **auditor_headers)
        assert response.status_code == 200, response.content
        return [r["id"] for r in response.json()["results"]]

    everything = ids("")
    assert everything == sorted(everything, reverse=True) or len(everything) <= 1
    assert ids(f"?user={user.pk}") == [old.pk]
    assert ids("?user=alice") == [old.pk]
    assert len(ids("?action=jobs.job.retrieve")) == 2
    assert len(ids("?action=jobs.*")) == 3
    assert len(ids(f"?resource_type=job&resource_id={job.pk}")) == 1
    assert len(ids("?success=false")) == 1
    since = (timezone.now() - timedelta(days=1)).isoformat().replace("+00:00", "Z")
    assert old.pk not in ids(f"?since={since}")
    assert ids(f"?until={since}") == [old.pk]
    page = client.get(LOGS_URL + "?limit=1&offset=1", **auditor_headers).json()
    assert page["count"] >= 3 and len(page["results"]) == 1


@pytest.mark.parametrize(
    ("query", "field"), [("?since=yesterday", "since"), ("?until=2026-13-01", "until"), ("?success=maybe", "success")]
)
def test_invalid_filters_are_400_naming_the_parameter(auditor, query, field):
    response = APIClient().get(LOGS_URL + query, **credentials.jwt_for(auditor))
    assert response.status_code == 400
    assert response.json()["error"] == "validation_error"
    assert field in response.json()["details"]


def test_detail_endpoint_returns_one_row(auditor, user):
    APIClient().get("/api/v1/jobs/", **credentials.jwt_for(user))
    row = AuditLog.objects.get(principal="alice")
    body = APIClient().get(f"{LOGS_URL}{row.pk}/", **credentials.jwt_for(auditor)).json()
    assert (body["id"], body["action"], body["principal"]) == (row.pk, "jobs.job.list", "alice")


def test_cleanup_audit_deletes_only_old_rows_in_batches(user):
    for _ in range(5):
        APIClient().get("/api/v1/jobs/", **credentials.jwt_for(user))
    rows = list(AuditLog.objects.order_by("id").values_list("id", flat=True))
    _backdate(rows[:3], timezone.now() - timedelta(days=100))

    out = StringIO()
    call_command("cleanup_audit", "--older-than", "90d", "--dry-run", stdout=out)
    assert "dry run: 3 audit rows" in out.getvalue()
    assert AuditLog.objects.count() == 5

    out = StringIO()
    call_command("cleanup_audit", "--older-than", "90d", "--batch-size", "2", stdout=out)
    assert out.getvalue().count("deleted ") == 2
    assert set(AuditLog.objects.values_list("id", flat=True)) >= set(rows[3:])
    assert not AuditLog.objects.filter(id__in=rows[:3]).exists()
    purge = only_row(action="command.cleanup_audit.purge")
    assert purge.request_details["operation"]["deleted"] == 3


def test_cleanup_audit_rejects_bad_ages(db):
    from django.core.management import CommandError

    with pytest.raises(CommandError):
        call_command("cleanup_audit", "--older-than", "ninety")
