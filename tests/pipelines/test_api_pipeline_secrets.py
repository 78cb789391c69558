"""Credentials in pipeline configs over the API: who reads configs, masking, write-back, secrets by name.

Every kind of caller reads the same pipeline; a real HTTP server on 127.0.0.1
checks that a `{"$secret": NAME}` header arrives with the secret's value.
"""

import json
import os
import secrets
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import urllib3.util.connection
from django.conf import settings
from rest_framework.test import APIClient
from werkzeug import Response

from audit.models import AuditLog
from jobs.models import Job, JobResult, JobStatus, StageRun
from jobs.run import job_run
from pipelines.models import Pipeline
from pipelines.secrets import MASK
from tests import credentials
from tests.conftest import grant_role
from tests.factories import UserFactory

URL = "/api/v1/pipelines/"
ROOT = Path(__file__).resolve().parents[2]
# Literal credentials embedded in a config (what masking hides), and the value of a named secret.
BEARER = credentials.remember("Bearer lit-" + secrets.token_hex(12))
API_KEY = credentials.remember("key-" + secrets.token_hex(12))
COOKIE = credentials.remember("sid=" + secrets.token_hex(12))
CUSTOM_AUTH = credentials.remember("custom-" + secrets.token_hex(12))  # a name audit's own redaction misses
UPSTREAM_TOKEN = credentials.remember("upstream-" + secrets.token_hex(12))
LITERALS = [BEARER, API_KEY, COOKIE, CUSTOM_AUTH]


def http_config(url):
    return {
        "input_schema": {"type": "object"},
        "stages": [
            {
                "name": "call",
                "type": "http_request",
                "params": {
                    "url": url,
                    "method": "POST",
                    "headers": {
                        "Authorization": BEARER,
                        "X-Api-Key": API_KEY,
                        "Cookie": COOKIE,
                        "X-Auth-Custom": CUSTOM_AUTH,
                        "X-Upstream-Token": {"$secret": "UPSTREAM_TOKEN"},
                        "Accept": "application/json",
                    },
                    "body": {"token": {"$secret": "UPSTREAM_TOKEN"}, "n": "{input.n}"},
                },
            }
        ],
    }


@pytest.fixture(autouse=True)
def upstream_secret(settings):
    settings.PIPELINE_SECRETS = {"UPSTREAM_TOKEN": UPSTREAM_TOKEN}


@pytest.fixture
def operator(operator_user):
    client = APIClient()
    client.credentials(**credentials.jwt_for(operator_user))
    return client


@pytest.fixture
def pipeline(operator):
    config = http_config("https://api.example.com/hook")
    response = operator.post(URL, {"name": "fetch", "config": config}, format="json")
    assert response.status_code == 201, response.content
    return Pipeline.objects.get(name="fetch")


def client_for(caller, db):
    """An API client for each kind of caller."""
    client = APIClient()
    submitter = grant_role(UserFactory(), "submitter")
    operator = grant_role(UserFactory(), "operator")
    match caller:
        case "operator":
            client.credentials(**credentials.jwt_for(operator))
        case "submitter":
            client.credentials(**credentials.jwt_for(submitter))
        case "jobs_create_key":
            client.credentials(**credentials.api_key_for(submitter, scopes=["jobs:create"]))
        case "audit_read_key":
            client.credentials(**credentials.api_key_for(grant_role(UserFactory(), "auditor"), scopes=["audit:read"]))
        case "operator_jobs_key":
            client.credentials(**credentials.api_key_for(operator, scopes=["jobs:create", "jobs:read"]))
        case "pipelines_read_key":
            client.credentials(**credentials.api_key_for(operator, scopes=["pipelines:read"]))
        case "submitter_pipelines_read_key":
            client.credentials(**credentials.api_key_for(submitter, scopes=["pipelines:read"]))
        case "service":
            client.credentials(HTTP_X_API_SECRET=settings.JOBSITE_API_SECRET)
    return client


CONFIG_READERS = {"operator", "pipelines_read_key", "service"}
CALLERS = [
    "operator",
    "submitter",
    "jobs_create_key",
    "audit_read_key",
    "operator_jobs_key",
    "pipelines_read_key",
    "submitter_pipelines_read_key",
    "service",
]


@pytest.mark.parametrize("caller", CALLERS)
def test_only_pipelines_read_callers_get_the_config_and_nobody_gets_a_credential(caller, pipeline, db):
    client = client_for(caller, db)

    detail = client.get(f"{URL}fetch/")
    listed = client.get(URL)

    assert detail.status_code == listed.status_code == 200
    assert listed.json()["results"] == [detail.json()]
    for literal in [*LITERALS, UPSTREAM_TOKEN]:
        assert literal not in detail.content.decode() + listed.content.decode()
    body = detail.json()
    if caller in CONFIG_READERS:
        headers = body["config"]["stages"][0]["params"]["headers"]
        assert headers == {
            "Authorization": MASK,
            "X-Api-Key": MASK,
            "Cookie": MASK,
            "X-Auth-Custom": MASK,
            "X-Upstream-Token": {"$secret": "UPSTREAM_TOKEN"},
            "Accept": "application/json",
        }
        assert body["config"]["stages"][0]["params"]["body"]["token"] == {"$secret": "UPSTREAM_TOKEN"}
    else:
        assert body == {
            "id": pipeline.pk,
            "name": "fetch",
            "description": "",
            "version": 1,
            "is_active": True,
            "input_schema": {"type": "object"},
            "stages": [{"name": "call", "type": "http_request"}],
        }


def test_the_stored_config_keeps_the_real_values(pipeline):
    headers = pipeline.config["stages"][0]["params"]["headers"]
    assert (headers["Authorization"], headers["X-Auth-Custom"]) == (BEARER, CUSTOM_AUTH)


def test_write_responses_are_masked_too(operator):
    response = operator.post(URL, {"name": "fetch", "config": http_config("https://api.example.com/")}, format="json")

    assert response.status_code == 201
    assert response.json()["config"]["stages"][0]["params"]["headers"]["Authorization"] == MASK
    assert not any(literal in response.content.decode() for literal in LITERALS)


def test_a_writer_without_pipelines_read_gets_the_outline_back(pipeline, operator_user):
    client = APIClient()
    client.credentials(**credentials.api_key_for(operator_user, scopes=["pipelines:write"]))

    response = client.patch(f"{URL}fetch/", {"description": "changed"}, format="json")

    assert response.status_code == 200
    assert "config" not in response.json()
    assert response.json()["description"] == "changed"


def test_sending_the_masked_config_back_keeps_every_stored_secret(operator, pipeline):
    config = operator.get(f"{URL}fetch/").json()["config"]
    config["stages"][0]["timeout_s"] = 30

    response = operator.put(f"{URL}fetch/", {"name": "fetch", "config": config}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["version"] == 2
    pipeline.refresh_from_db()
    headers = pipeline.config["stages"][0]["params"]["headers"]
    assert [headers[name] for name in ("Authorization", "X-Api-Key", "Cookie", "X-Auth-Custom")] == LITERALS
    assert pipeline.config["stages"][0]["timeout_s"] == 30


def test_sending_the_masked_config_back_unchanged_is_no_change(operator, pipeline):
    config = operator.get(f"{URL}fetch/").json()["config"]

    response = operator.patch(f"{URL}fetch/", {"config": config, "description": "only this"}, format="json")

    assert response.json()["version"] == 1
    pipeline.refresh_from_db()
    assert pipeline.config == http_config("https://api.example.com/hook")


def test_a_new_value_replaces_a_stored_secret(operator, pipeline):
    config = operator.get(f"{URL}fetch/").json()["config"]
    config["stages"][0]["params"]["headers"]["Authorization"] = "Bearer new"

    operator.patch(f"{URL}fetch/", {"config": config}, format="json")

    pipeline.refresh_from_db()
    headers = pipeline.config["stages"][0]["params"]["headers"]
    assert (headers["Authorization"], headers["X-Api-Key"]) == ("Bearer new", API_KEY)


@pytest.mark.parametrize("change", ["new pipeline", "renamed stage", "new header"])
def test_a_mask_with_no_stored_value_behind_it_is_400(operator, pipeline, change):
    config = operator.get(f"{URL}fetch/").json()["config"]
    name, field = "fetch", "config.stages[0].params.headers.Authorization"
    if change == "new pipeline":
        name = "copy"
    elif change == "renamed stage":
        config["stages"][0]["name"] = "renamed"
    else:
        config["stages"][0]["params"]["headers"]["X-Other-Token"] = MASK
        field = "config.stages[0].params.headers.X-Other-Token"

    if name == "copy":
        response = operator.post(URL, {"name": name, "config": config}, format="json")
    else:
        response = operator.patch(f"{URL}{name}/", {"config": config}, format="json")

    assert response.status_code == 400
    assert field in response.json()["details"]["config"]
    pipeline.refresh_from_db()
    assert pipeline.version == 1
    assert not Pipeline.objects.filter(name="copy").exists()


def test_an_unknown_secret_is_400_naming_the_stage_params(operator):
    config = http_config("https://api.example.com/")
    config["stages"][0]["params"]["headers"]["X-Other"] = {"$secret": "NOT_CONFIGURED"}

    response = operator.post(URL, {"name": "fetch", "config": config}, format="json")

    assert response.status_code == 400
    messages = response.json()["details"]["config"]["config.stages[0].params"]
    assert any("NOT_CONFIGURED" in message for message in messages)
    assert not Pipeline.objects.filter(name="fetch").exists()


@pytest.mark.parametrize(
    "reference",
    [{"$secret": 5}, {"$secret": "has space"}, {"$secret": "OK", "and": "more"}],
    ids=["not a string", "bad name", "extra key"],
)
def test_a_malformed_secret_reference_is_400(operator, reference):
    config = http_config("https://api.example.com/")
    config["stages"][0]["params"]["headers"]["X-Other"] = reference

    response = operator.post(URL, {"name": "fetch", "config": config}, format="json")

    assert response.status_code == 400
    assert "config.stages[0].params" in response.json()["details"]["config"]


def test_audit_rows_of_pipeline_writes_hold_no_credential(operator, pipeline):
    config = operator.get(f"{URL}fetch/").json()["config"]
    config["stages"][0]["params"]["headers"]["X-Auth-Custom"] = CUSTOM_AUTH
    operator.put(f"{URL}fetch/", {"name": "fetch", "config": config}, format="json")

    rows = AuditLog.objects.filter(action__startswith="pipelines.pipeline.")
    assert {row.action for row in rows} >= {"pipelines.pipeline.create", "pipelines.pipeline.update"}
    stored = json.dumps([row.request_details for row in rows])
    assert "X-Auth-Custom" in stored
    assert not [literal for literal in LITERALS if literal in stored]


def test_the_admin_pipeline_page_masks_credentials_and_saving_it_keeps_them(admin_client, pipeline):
    page = admin_client.get(f"/admin/pipelines/pipeline/{pipeline.pk}/change/")

    assert page.status_code == 200
    assert not [literal for literal in LITERALS if literal in page.content.decode()]
    shown = page.context["adminform"].form.initial["config"]
    assert shown["stages"][0]["params"]["headers"]["Authorization"] == MASK

    shown["stages"][0]["timeout_s"] = 5
    response = admin_client.post(
        f"/admin/pipelines/pipeline/{pipeline.pk}/change/",
        {"name": "fetch", "description": "", "config": json.dumps(shown), "is_active": "on"},
    )

    assert response.status_code == 302
    pipeline.refresh_from_db()
    assert (pipeline.version, pipeline.config["stages"][0]["timeout_s"]) == (2, 5)
    assert pipeline.config["stages"][0]["params"]["headers"]["Authorization"] == BEARER


def test_the_stage_types_list_is_unchanged_by_masking_and_documents_secret_references(pipeline, user):
    body = APIClient().get("/api/v1/stages/", **credentials.jwt_for(user)).json()
    http_request = next(stage for stage in body if stage["name"] == "http_request")
    headers = http_request["params_schema"]["properties"]["headers"]

    assert headers["additionalProperties"]["then"]["required"] == ["$secret"]


def test_pipeline_secrets_are_read_from_prefixed_environment_variables():
    env = {
        **{name: value for name, value in os.environ.items() if not name.startswith("PIPELINE_SECRET_")},
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PIPELINE_SECRET_UPSTREAM_TOKEN": "from-the-environment",
        "PIPELINE_SECRET_": "no name",
        "UNRELATED_SECRET": "not a pipeline secret",
    }
    code = "from django.conf import settings; print(sorted(settings.PIPELINE_SECRETS.items()))"

    result = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=True)

    assert result.stdout.strip() == "[('UPSTREAM_TOKEN', 'from-the-environment')]"


# --- the secret at run time, against a real server ---------------------------------


@pytest.fixture
def loopback(settings, monkeypatch):
    """Private addresses allowed, and any connection off loopback fails the test."""
    settings.ALLOW_PRIVATE_NETWORK_URLS = True
    real_create_connection = urllib3.util.connection.create_connection

    def create_connection(address, *args, **kwargs):
        resolved = {info[4][0] for info in socket.getaddrinfo(*address, type=socket.SOCK_STREAM)}
        assert resolved <= {"127.0.0.1", "::1"}, f"tests may only connect to loopback, not {resolved}"
        return real_create_connection(address, *args, **kwargs)

    monkeypatch.setattr(urllib3.util.connection, "create_connection", create_connection)


def run_job(pipeline_name, input_data, stub_broker, capture):
    with capture(execute=True):
        response = APIClient().post(
            "/api/v1/jobs/",
            {"pipeline": pipeline_name, "input_data": input_data},
            format="json",
            HTTP_X_API_SECRET=settings.JOBSITE_API_SECRET,
        )
    assert response.status_code == 201, response.content
    job_run(job_id=response.json()["job_id"])
    return Job.objects.get(pk=response.json()["job_id"])


def test_a_secret_header_arrives_resolved_and_its_value_stays_out_of_the_output(
    operator, loopback, httpserver, stub_broker, django_capture_on_commit_callbacks
):
    def echo(request):  # an upstream that echoes what it got, as debugging endpoints do
        return Response(
            json.dumps({"headers": dict(request.headers), "json": request.get_json()}),
            headers={"Content-Type": "application/json", "X-Seen": request.headers.get("X-Upstream-Token", "")},
        )

    httpserver.expect_request(
        "/hook",
        method="POST",
        headers={"X-Upstream-Token": UPSTREAM_TOKEN, "Authorization": BEARER},
        json={"token": UPSTREAM_TOKEN, "n": "7"},
    ).respond_with_handler(echo)
    operator.post(URL, {"name": "fetch", "config": http_config(httpserver.url_for("/hook"))}, format="json")

    job = run_job("fetch", {"n": 7}, stub_broker, django_capture_on_commit_callbacks)

    assert job.status == JobStatus.COMPLETED, job.error_message
    assert len(httpserver.log) == 1
    output = JobResult.objects.get(job=job).result  # a one-stage job: its stage's output is the result
    assert StageRun.objects.get(job=job).output is None
    assert output["body"]["headers"]["X-Upstream-Token"] == "[secret UPSTREAM_TOKEN]"
    assert output["body"]["json"]["token"] == "[secret UPSTREAM_TOKEN]"
    assert output["headers"]["X-Seen"] == "[secret UPSTREAM_TOKEN]"
    stored = json.dumps([output, JobResult.objects.get(job=job).result, job.pipeline_config, job.input_data])
    assert UPSTREAM_TOKEN not in stored


def test_a_secret_never_reaches_an_error_message(
    operator, loopback, httpserver, stub_broker, django_capture_on_commit_callbacks, settings
):
    hook = httpserver.url_for("/private/hook-path")
    settings.PIPELINE_SECRETS = {"UPSTREAM_TOKEN": UPSTREAM_TOKEN, "HOOK_URL": hook}
    httpserver.expect_request("/private/hook-path").respond_with_data("no", status=503)
    config = {
        "stages": [
            {"name": "down", "type": "http_request", "params": {"url": {"$secret": "HOOK_URL"}}},
        ]
    }
    operator.post(URL, {"name": "down", "config": config}, format="json")
    bad_header = {
        "stages": [
            {
                "name": "bad",
                "type": "http_request",
                "params": {"url": hook, "headers": {"X-Token": {"$secret": "UPSTREAM_TOKEN"}}},
            }
        ]
    }
    operator.post(URL, {"name": "bad-header", "config": bad_header}, format="json")

    down = run_job("down", {}, stub_broker, django_capture_on_commit_callbacks)
    settings.PIPELINE_SECRETS = {"UPSTREAM_TOKEN": " " + UPSTREAM_TOKEN}  # requests refuses it, quoting the value
    bad = run_job("bad-header", {}, stub_broker, django_capture_on_commit_callbacks)

    assert down.status == bad.status == JobStatus.FAILED
    assert "the URL of secret 'HOOK_URL' returned HTTP 503" in down.error_message
    assert "[secret UPSTREAM_TOKEN]" in bad.error_message
    runs = StageRun.objects.filter(job__in=[down, bad])
    stored = json.dumps([[run.error, run.traceback] for run in runs] + [down.error_message, bad.error_message])
    assert "/private/hook-path" not in stored
    assert UPSTREAM_TOKEN not in stored


def test_a_secret_missing_where_the_stage_runs_fails_it_without_retries(
    operator, loopback, httpserver, stub_broker, django_capture_on_commit_callbacks, settings
):
    config = http_config(httpserver.url_for("/hook"))
    config["stages"][0]["retries"] = 3
    operator.post(URL, {"name": "fetch", "config": config}, format="json")
    settings.PIPELINE_SECRETS = {}  # the worker lacks the variable the web server has

    job = run_job("fetch", {"n": 1}, stub_broker, django_capture_on_commit_callbacks)

    assert job.status == JobStatus.FAILED
    assert "PIPELINE_SECRET_UPSTREAM_TOKEN" in job.error_message
    assert httpserver.log == []
