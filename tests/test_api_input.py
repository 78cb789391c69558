"""Bad input is a 400 in the error shape: deep JSON, unstorable text, unknown list parameters, secrets in URLs."""

import json

import pytest
from rest_framework.test import APIClient

from accounts.api.views import LoginView, RefreshView
from audit.models import AuditLog
from jobs.models import Job
from jobsite.api.parsers import LimitedJSONParser
from pipelines.models import Pipeline
from tests import credentials

ERROR_KEYS = {"error", "message", "details", "request_id"}
JOBS_URL = "/api/v1/jobs/"


def nested(depth: int):
    """A JSON value with `depth` levels of arrays/objects: nested(1) == []."""
    value: list | dict = []
    for level in range(depth - 1):
        value = {"k": value} if level % 2 else [value]
    return value


def post_raw(client, url, body, **extra):
    """POST `body` encoded as a client would: JSON text with \\u escapes for NUL and surrogates."""
    text = body if isinstance(body, str) else json.dumps(body)
    return client.post(url, data=text.encode(), content_type="application/json", **extra)


# -- nesting depth ----------------------------------------------------------------


@pytest.mark.parametrize("url", ["/api/v1/auth/login/", "/api/v1/auth/refresh/", JOBS_URL, "/api/v1/pipelines/"])
@pytest.mark.parametrize("depth", [65, 1000, 100_000])
def test_json_nested_past_the_limit_is_400_on_every_endpoint(db, service_client, url, depth):
    body = "[" * depth + "]" * depth
    response = post_raw(service_client if "auth" not in url else APIClient(), url, body)
    assert response.status_code == 400
    data = response.json()
    assert set(data) == ERROR_KEYS
    assert data["error"] == "malformed_request"
    assert data["details"] == {"max_depth": 64}


def test_json_nested_up_to_the_limit_is_accepted_and_the_limit_is_a_setting(service_client, demo_pipelines, settings):
    # The body object is one level; input_data brings the rest.
    at_limit = {"pipeline": "sample_task", "input_data": {"x": nested(62)}}
    assert post_raw(service_client, JOBS_URL, at_limit).status_code == 201
    past_limit = {"pipeline": "sample_task", "input_data": {"x": nested(63)}}
    assert post_raw(service_client, JOBS_URL, past_limit).status_code == 400

    settings.API_MAX_JSON_DEPTH = 70
    assert post_raw(service_client, JOBS_URL, past_limit).status_code == 201


def test_login_and_refresh_parse_with_the_limited_parser():
    for view in (LoginView, RefreshView):
        assert [type(p) for p in view().get_parsers()] == [LimitedJSONParser]


# -- NUL characters and unpaired surrogates ---------------------------------------------

BAD_TEXT = [pytest.param("a\x00b", id="nul"), pytest.param("a\ud800b", id="lone-surrogate")]


@pytest.mark.parametrize("bad", BAD_TEXT)
def test_unstorable_text_in_input_data_is_400_naming_the_path(service_client, demo_pipelines, bad):
    body = {"pipeline": "sample_task", "input_data": {"items": [{"name": "ok"}, {"name": bad}]}}
    response = post_raw(service_client, JOBS_URL, body)
    assert response.status_code == 400
    errors = response.json()["details"]
    assert list(errors) == ["input_data"]
    assert "items[1].name" in errors["input_data"][0]
    assert not Job.objects.exists()


@pytest.mark.parametrize("bad", BAD_TEXT)
def test_unstorable_text_in_an_input_data_key_is_400(service_client, demo_pipelines, bad):
    response = post_raw(service_client, JOBS_URL, {"pipeline": "sample_task", "input_data": {bad: 1}})
    assert response.status_code == 400
    assert "in a key" in response.json()["details"]["input_data"][0]


@pytest.mark.parametrize("bad", BAD_TEXT)
@pytest.mark.parametrize("field", ["username", "action", "webhook_url", "webhook_secret", "idempotency_key"])
def test_unstorable_text_in_a_stored_submission_field_is_400_naming_it(service_client, demo_pipelines, field, bad):
    value = f"https://hooks.example.com/{bad}" if field == "webhook_url" else bad
    response = post_raw(service_client, JOBS_URL, {"pipeline": "sample_task", "input_data": {}, field: value})
    assert response.status_code == 400
    assert field in response.json()["details"]
    assert not Job.objects.exists()


@pytest.mark.parametrize("bad", BAD_TEXT)
def test_unstorable_text_in_an_ignored_field_is_no_error(service_client, demo_pipelines, bad):
    body = {"pipeline": "sample_task", "input_data": {"n": 1}, "comment": bad}
    response = post_raw(service_client, JOBS_URL, body)
    assert response.status_code == 201
    row = AuditLog.objects.get(action="jobs.job.create")
    assert row.request_details["body"]["data"]["comment"] == bad.replace("\x00", "\\u0000").replace("\ud800", "\\ud800")


@pytest.mark.parametrize("bad", BAD_TEXT)
def test_in_a_batch_only_the_item_with_unstorable_text_fails(service_client, demo_pipelines, bad):
    body = {
        "jobs": [
            {"pipeline": "sample_task", "input_data": {"n": 1}},
            {"pipeline": "sample_task", "input_data": {"n": bad}},
            {"pipeline": "sample_task", "input_data": {"n": 3}, "ignored": bad},
        ]
    }
    response = post_raw(service_client, f"{JOBS_URL}batch/", body)
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["status"] for r in results] == [201, 400, 201]
    assert "input_data" in results[1]["errors"]
    assert Job.objects.count() == 2


@pytest.mark.parametrize("bad", BAD_TEXT)
@pytest.mark.parametrize("field", ["name", "description", "config"])
def test_unstorable_text_in_a_pipeline_is_400_naming_the_field(db, service_client, bad, field):
    body = {"name": "clean", "description": "fine", "config": {"stages": [{"name": "e", "type": "echo"}]}}
    if field == "config":
        body["config"]["stages"][0]["name"] = bad
    else:
        body[field] = bad
    response = post_raw(service_client, "/api/v1/pipelines/", body)
    assert response.status_code == 400
    assert field in response.json()["details"]
    if field == "config":
        assert "stages[0].name" in response.json()["details"]["config"][0]
    assert not Pipeline.objects.exists()


@pytest.mark.parametrize("bad", BAD_TEXT)
def test_unstorable_text_in_an_api_key_name_is_400(user, bad):
    response = post_raw(APIClient(), "/api/v1/auth/api-keys/", {"name": bad}, **credentials.jwt_for(user))
    assert response.status_code == 400
    assert "name" in response.json()["details"]
    # The refused request is in the audit log too, its body escaped.
    row = AuditLog.objects.get(action="accounts.api_key.create")
    assert row.status_code == 400
    assert row.request_details["body"]["data"]["name"].startswith("a\\u")


# -- unknown query parameters on lists --------------------------------------------------

LISTS = [
    pytest.param(JOBS_URL, "service", id="jobs"),
    pytest.param("/api/v1/audit/logs/", "service", id="audit-logs"),
    pytest.param("/api/v1/pipelines/", "service", id="pipelines"),
    pytest.param("/api/v1/stages/", "service", id="stages"),
    pytest.param("/api/v1/auth/api-keys/", "user", id="api-keys"),
]


def _client(kind, user):
    client = APIClient()
    if kind == "service":
        from django.conf import settings

        client.credentials(HTTP_X_API_SECRET=settings.JOBSITE_API_SECRET)
    else:
        client.credentials(**credentials.jwt_for(user))
    return client


@pytest.mark.parametrize(("url", "kind"), LISTS)
def test_unknown_list_parameter_is_400_naming_it_and_the_accepted_ones(user, url, kind):
    client = _client(kind, user)
    assert client.get(url).status_code == 200
    response = client.get(url, {"job_type": "bogus", "format": "json"})
    assert response.status_code == 400
    data = response.json()
    # The jobs list is also the LLM workflow service's: its errors add the service's `detail`.
    assert set(data) == (ERROR_KEYS | {"detail"} if url == JOBS_URL else ERROR_KEYS)
    assert "job_type" in data["details"]
    assert "format" in data["details"]["valid_parameters"]
    assert "format" not in data["details"]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            JOBS_URL,
            {
                "status",
                "status_filter",
                "user_id",
                "pipeline",
                "username",
                "action",
                "search",
                "created_after",
                "created_before",
                "limit_results",
                "ordering",
                "limit",
                "offset",
                "format",
            },
        ),
        (
            "/api/v1/audit/logs/",
            {
                "user",
                "user_id",
                "action",
                "resource_type",
                "resource_id",
                "success",
                "since",
                "until",
                "start_date",
                "end_date",
                "limit",
                "offset",
                "format",
            },
        ),
        ("/api/v1/stages/", {"format"}),
    ],
)
def test_valid_parameters_are_the_filters_pagination_and_format(db, service_client, url, expected):
    response = service_client.get(url, {"page": "2"})
    assert response.status_code == 400
    assert set(response.json()["details"]["valid_parameters"]) == expected


def test_every_accepted_job_list_parameter_still_works(service_client, demo_pipelines):
    params = {
        "status": "all",
        "pipeline": "sample_task",
        "username": "",
        "search": "x",
        "created_after": "2020-01-01T00:00:00Z",
        "limit_results": "10",
        "ordering": "-priority",
        "limit": "5",
        "offset": "0",
        "format": "json",
    }
    assert service_client.get(JOBS_URL, params).status_code == 200


def test_limit_results_is_unknown_where_the_list_has_no_such_filter(db, service_client):
    response = service_client.get("/api/v1/audit/logs/", {"limit_results": "100000"})
    assert response.status_code == 400
    assert "limit_results" in response.json()["details"]


def test_a_view_can_accept_extra_parameters(db, service_client, monkeypatch):
    from jobs.api.views import JobViewSet

    monkeypatch.setattr(JobViewSet, "extra_query_params", ("page",))
    assert service_client.get(JOBS_URL, {"page": "2"}).status_code == 200
    assert service_client.get(JOBS_URL, {"page_size": "2"}).status_code == 400


def test_unknown_parameters_are_checked_after_authentication(db):
    assert APIClient().get(JOBS_URL, {"job_type": "bogus"}).status_code == 401


# -- credentials inside webhook_url -----------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://user:pass@hooks.example.com/cb",
        "https://token@hooks.example.com/cb",
        "https://hooks.example.com/cb?token=abc",
        "https://hooks.example.com/cb?key=abc",
        "https://hooks.example.com/cb?x=1&secret=abc",
        "https://hooks.example.com/cb?sig=abc",
        "https://hooks.example.com/cb?access_token=abc",
        "https://hooks.example.com/cb?X-Amz-Signature=abc",
        "https://hooks.example.com/cb#api_key=abc",
    ],
)
def test_credentials_in_webhook_url_are_refused(service_client, demo_pipelines, url):
    body = {"pipeline": "sample_task", "input_data": {}, "webhook_url": url}
    response = service_client.post(JOBS_URL, body, format="json")
    assert response.status_code == 400
    assert list(response.json()["details"]) == ["webhook_url"]
    assert not Job.objects.exists()


@pytest.mark.parametrize(
    "url", ["https://hooks.example.com/cb", "https://hooks.example.com/cb?job=1&keyword=x&monkey=2&event=done"]
)
def test_webhook_urls_without_credentials_are_accepted(service_client, demo_pipelines, url):
    body = {"pipeline": "sample_task", "input_data": {}, "webhook_url": url}
    response = service_client.post(JOBS_URL, body, format="json")
    assert response.status_code == 201
    assert Job.objects.get().webhook_url == url


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:5432/",
        "http://localhost:8000/admin/",
        "http://api.localhost/",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.1.2.3/cb",
        "http://[::1]/cb",
        "http://[::ffff:192.168.0.1]/cb",
        "ftp://hooks.example.com/cb",
    ],
)
def test_webhook_urls_the_service_may_not_call_are_refused(service_client, demo_pipelines, url, settings):
    settings.ALLOW_PRIVATE_NETWORK_URLS = False
    body = {"pipeline": "sample_task", "input_data": {}, "webhook_url": url}
    response = service_client.post(JOBS_URL, body, format="json")
    assert response.status_code == 400
    assert list(response.json()["details"]) == ["webhook_url"]
    assert not Job.objects.exists()


def test_private_webhook_urls_are_accepted_when_private_networks_are_allowed(service_client, demo_pipelines, settings):
    settings.ALLOW_PRIVATE_NETWORK_URLS = True
    body = {"pipeline": "sample_task", "input_data": {}, "webhook_url": "http://127.0.0.1:9000/cb"}
    response = service_client.post(JOBS_URL, body, format="json")
    assert response.status_code == 201
    assert Job.objects.get().webhook_url == "http://127.0.0.1:9000/cb"


def test_an_object_named_with_a_nul_is_404_not_503(user):
    credentials.api_key_for(user)
    response = APIClient().delete("/api/v1/auth/api-keys/%00/", **credentials.jwt_for(user))
    assert response.status_code == 404
    assert set(response.json()) == ERROR_KEYS
