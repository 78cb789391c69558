"""The OpenAPI schema and its documentation pages."""

import re

import pytest
import yaml
from django.core.management import call_command
from rest_framework.test import APIClient


def test_schema_generates_without_warnings_and_validates(tmp_path):
    target = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))
    schema = yaml.safe_load(target.read_text())
    assert {"/api/v1/jobs/", "/api/v1/jobs/{id}/", "/api/v1/jobs/batch/", "/api/v1/audit/logs/"} <= set(schema["paths"])


def test_schema_documents_the_list_parameters_and_status_enum(db):
    response = APIClient().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    params = {p["name"] for p in schema["paths"]["/api/v1/jobs/"]["get"]["parameters"]}
    assert {"status", "user_id", "pipeline", "limit_results", "limit", "offset", "ordering", "search"} <= params
    statuses = schema["components"]["schemas"]["JobStatusEnum"]["enum"]
    assert set(statuses) == {
        "pending",
        "scheduled",
        "queued",
        "processing",
        "retrying",
        "completed",
        "failed",
        "cancelling",
        "cancelled",
    }
    assert {"ApiSecret", "ApiKey", "jwtAuth"} <= set(schema["components"]["securitySchemes"])
    submit = schema["paths"]["/api/v1/jobs/"]["post"]
    assert {"201", "200", "400"} <= set(submit["responses"])


@pytest.mark.parametrize("page", ["/api/docs/", "/api/redoc/"])
def test_documentation_pages_load_every_asset_locally(db, page):
    response = APIClient().get(page)
    assert response.status_code == 200
    html = response.content.decode()
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sources, "the page should load its scripts"
    assert all(not s.startswith(("http:", "https:", "//")) for s in sources), sources
    assert "cdn" not in html.lower()
