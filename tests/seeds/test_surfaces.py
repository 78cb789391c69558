"""What every seed surface shares with jobsite's own API: rate limits, request ids, JSON errors, never a 500."""

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from tests import credentials

from .conftest import REQUEST_ID, assert_request_id

SURFACES = [
    pytest.param("get", "/api/v1/jobs", id="llm-list"),
    pytest.param("get", "/api/v1/status/0b6f2a52-5f7e-4d0e-a0c4-3d5e8f2b9c10", id="llm-status"),
    pytest.param("post", "/api/v1/workflow", id="llm-workflow"),
    pytest.param("post", "/api/v1/workflow/validate", id="llm-validate"),
    pytest.param("get", "/tasks", id="tasks-list"),
    pytest.param("post", "/tasks/sample_task", id="tasks-create"),
    pytest.param("get", "/tasks/stats", id="tasks-stats"),
    pytest.param("get", "/jobs", id="starter-list"),
    pytest.param("post", "/jobs", id="starter-create"),
]


@pytest.mark.parametrize(("method", "path"), SURFACES)
def test_every_surface_is_rate_limited(db, settings, method, path):
    settings.THROTTLE_RATES = {**settings.THROTTLE_RATES, "anon": "2/minute"}
    client = APIClient()

    codes = [getattr(client, method)(path, {}, format="json").status_code for _ in range(2)]
    limited = getattr(client, method)(path, {}, format="json", HTTP_X_REQUEST_ID=REQUEST_ID)

    assert codes == [401, 401]
    assert limited.status_code == 429
    assert int(limited["Retry-After"]) > 0
    assert assert_request_id(limited)["error"] == "throttled"


@pytest.mark.parametrize("path", [p.values[1] for p in SURFACES if p.values[0] == "post"])
@pytest.mark.parametrize(
    "body",
    [
        pytest.param('{"a": ', id="truncated"),
        pytest.param("[" * 100 + "]" * 100, id="too-deep"),
        pytest.param(
            '{"workflow_name": "\\u0000", "job_type": "\\ud800", "input_data": {"\\u0000": 1}}', id="unstorable"
        ),
        pytest.param('"just a string"', id="a-string"),
    ],
)
def test_bad_bodies_are_a_json_4xx_with_the_request_id_never_a_500(demo_pipelines, user, path, body):
    secret = {"HTTP_X_API_SECRET": settings.JOBSITE_API_SECRET}
    headers = credentials.jwt_for(user) if path.startswith("/jobs") else secret

    response = APIClient().post(
        path, data=body, content_type="application/json", HTTP_X_REQUEST_ID=REQUEST_ID, **headers
    )

    assert 400 <= response.status_code < 500, response.content
    assert "detail" in assert_request_id(response)
