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
    assert {"status", "status_filter", "user_id", "pipeline", "limit_results", "limit", "offset", "ordering"} <= params
    ref = schema["paths"]["/api/v1/jobs/"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    page = schema["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert {"jobs", "total", "limit", "offset", "total_estimated", "next", "previous"} <= set(page["properties"])
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


# Every seed surface, documented once at the path its contract spells, under its contract's tag.
SEED_OPERATIONS = {
    "LLM workflow service (seeds 000/001)": {
        ("get", "/api/v1/jobs/"),
        ("get", "/api/v1/status/{job_id}/"),
        ("post", "/api/v1/workflow/"),
        ("post", "/api/v1/workflow/validate/"),
    },
    "Production job system (seed 002)": {
        ("get", "/api/v1/pipelines/"),
        ("post", "/api/v1/pipelines/"),
        ("get", "/api/v1/pipelines/{name}/"),
        ("put", "/api/v1/pipelines/{name}/"),
        ("patch", "/api/v1/pipelines/{name}/"),
        ("delete", "/api/v1/pipelines/{name}/"),
        ("post", "/api/v1/jobs/"),
        ("get", "/api/v1/jobs/{id}/result/"),
        ("get", "/api/v1/auth/api-keys/"),
        ("post", "/api/v1/auth/api-keys/"),
        ("delete", "/api/v1/auth/api-keys/{id}/"),
        ("get", "/api/v1/audit/logs/"),
        ("get", "/api/v1/audit/logs/{id}/"),
    },
    "Task API (seed 003)": {
        ("get", "/tasks"),
        ("get", "/tasks/stats"),
        ("get", "/tasks/{task}"),
        ("post", "/tasks/{task}"),
        ("delete", "/tasks/{task}"),
        ("post", "/tasks/{task}/batch"),
        ("patch", "/tasks/{task}/retry"),
    },
    "Starter job API (seed 004)": {("get", "/jobs"), ("post", "/jobs"), ("get", "/jobs/{job_id}")},
}


def test_schema_documents_every_seed_surface_under_its_contracts_tag(db):
    schema = APIClient().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()

    tagged: dict[str, set] = {}
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            for tag in operation["tags"]:
                tagged.setdefault(tag, set()).add((method, path))
    for tag, operations in SEED_OPERATIONS.items():
        assert tagged[tag] == operations, tag
    assert set(SEED_OPERATIONS) <= {tag["name"] for tag in schema["tags"]}
    unprefixed = [path for path in schema["paths"] if path.startswith(("/tasks", "/jobs"))]
    assert not [path for path in unprefixed if path.endswith("/")]  # the slashed spellings are not documented twice
    assert not [path for path in schema["paths"] if path.startswith("/api/v1/tasks")]
    assert schema["paths"]["/api/v1/status/{job_id}/"]["get"]["parameters"][0]["schema"]["format"] == "uuid"
