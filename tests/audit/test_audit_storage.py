"""The audit log keeps a row for every request, whatever it carried, and no credential in it."""

import json

import pytest
from rest_framework.test import APIClient

from audit.context import command_context
from audit.models import AuditLog
from audit.redaction import REDACTED, is_sensitive_name
from audit.services import audit_record
from tests import credentials
from tests.conftest import grant_role
from tests.factories import JobFactory, UserFactory

PASSWORD = "correct horse battery staple"


def stored(row: AuditLog) -> str:
    """Everything a row holds, as text."""
    return json.dumps(AuditLog.objects.filter(pk=row.pk).values().get(), default=str)


# -- rows whatever the request carried ------------------------------------------------


def test_a_job_read_with_nul_in_the_query_keeps_its_row(user):
    job = JobFactory(user_id=user.pk)
    response = APIClient().get(f"/api/v1/jobs/{job.pk}/", {"q": "a\x00b"}, **credentials.jwt_for(user))
    assert response.status_code == 200
    row = AuditLog.objects.get(action="jobs.job.retrieve")
    assert row.request_details["query"] == {"q": "a\\u0000b"}


def test_an_audit_read_with_nul_in_a_filter_keeps_its_row(db):
    auditor = grant_role(UserFactory(username="auditor"), "auditor")
    response = APIClient().get("/api/v1/audit/logs/", {"action": "\x00"}, **credentials.jwt_for(auditor))
    assert response.status_code == 400  # the filter refuses it; the request is still recorded
    row = AuditLog.objects.get(action="audit.audit_log.list")
    assert row.request_details["query"] == {"action": "\\u0000"}


def test_a_failed_key_guess_with_nul_in_the_path_keeps_its_row(db):
    response = APIClient().get(
        "/api/v1/jobs/%00/", HTTP_AUTHORIZATION="Api-Key guess123.x", HTTP_USER_AGENT="probe\x00/1.0"
    )
    assert response.status_code == 401
    row = AuditLog.objects.get()
    assert (row.principal, row.status_code, row.success) == ("anonymous", 401, False)
    assert row.request_details["path"] == "/api/v1/jobs/\\u0000/"
    assert row.resource_id == "\\u0000"
    assert row.user_agent == "probe\\u0000/1.0"


def test_every_field_a_service_row_stores_is_escaped(db):
    with command_context("probe"):
        row = audit_record(
            app="probe",
            entity="thing",
            verb="check",
            resource_id="id\x00" + "x" * 200,
            error_message="failed on \x00 and \ud800",
            details={"field\x00": ["v\udfff", {"deep": "\x00"}]},
        )
    row.refresh_from_db()
    assert row.resource_id == ("id\\u0000" + "x" * 200)[:100]
    assert row.error_message == "failed on \\u0000 and \\ud800"
    assert row.request_details["operation"] == {"field\\u0000": ["v\\udfff", {"deep": "\\u0000"}]}


# -- credentials never stored -----------------------------------------------------------


def test_login_and_rotated_refresh_tokens_are_never_stored(db):
    UserFactory(username="carol", password=PASSWORD)
    client = APIClient()
    pair = client.post("/api/v1/auth/login/", {"username": "carol", "password": PASSWORD}, format="json").json()
    rotated = client.post("/api/v1/auth/refresh/", {"refresh": pair["refresh"]}, format="json")
    assert rotated.status_code == 200
    tokens = [credentials.remember(t) for t in (pair["access"], pair["refresh"], *rotated.json().values())]

    everything = json.dumps(list(AuditLog.objects.values()), default=str)
    assert PASSWORD not in everything
    for token in tokens:
        assert token not in everything
    refresh_row = AuditLog.objects.get(action="accounts.auth.refresh")
    assert refresh_row.request_details["body"]["data"] == {"refresh": REDACTED}


@pytest.mark.parametrize("field", ["access", "refresh", "jwt", "id_token", "api_key", "apiKey", "X-Api-Key", "sig"])
def test_token_like_field_names_are_redacted(service_client, demo_pipelines, field):
    body = {"pipeline": "sample_task", "input_data": {field: "value-0123456789"}}
    assert service_client.post("/api/v1/jobs/", body, format="json").status_code == 201
    row = AuditLog.objects.get(action="jobs.job.create")
    assert row.request_details["body"]["data"]["input_data"] == {field: REDACTED}


def test_jwt_and_api_key_shaped_values_are_redacted_wherever_they_are(user, service_client, demo_pipelines):
    jwt = credentials.refresh_for(user)
    key = credentials.api_key_for(user)["HTTP_AUTHORIZATION"].removeprefix("Api-Key ")
    body = {
        "pipeline": "sample_task",
        "input_data": {"note": f"Bearer {jwt}", "copy": [key], "host": "api.example.com"},
    }
    response = service_client.post(f"/api/v1/jobs/?q={jwt}", body, format="json", HTTP_USER_AGENT=f"bot {key}")
    assert response.status_code == 201
    row = AuditLog.objects.get(action="jobs.job.create")
    assert jwt not in stored(row)
    assert key not in stored(row)
    assert row.request_details["body"]["data"]["input_data"] == {
        "note": f"Bearer {REDACTED}",
        "copy": [REDACTED],
        "host": "api.example.com",
    }
    assert row.request_details["query"] == {"q": REDACTED}
    assert row.user_agent == f"bot {REDACTED}"


@pytest.mark.parametrize(
    ("name", "sensitive"),
    [
        ("password", True),
        ("webhook_secret", True),
        ("refresh", True),
        ("access", True),
        ("refreshToken", True),
        ("X-Amz-Signature", True),
        ("hmac", True),
        ("idempotency_key", True),
        ("username", False),
        ("keyword", False),
        ("monkey", False),
        ("accessibility", False),
        ("passenger", False),
        ("pipeline", False),
    ],
)
def test_sensitive_names(name, sensitive):
    assert is_sensitive_name(name) is sensitive
