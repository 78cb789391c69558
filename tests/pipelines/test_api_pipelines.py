"""Pipelines over the API: CRUD, validation, versions and snapshots; the stage types list."""

import pytest
from rest_framework.test import APIClient

from jobs.models import Job
from pipelines.models import Pipeline
from tests import credentials
from tests.factories import JobFactory

URL = "/api/v1/pipelines/"
CONFIG = {
    "input_schema": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
    "stages": [
        {"name": "extract", "type": "extract_text", "params": {}, "retries": 1, "timeout_s": 30},
        {"name": "stats", "type": "text_stats", "params": {"top": 3}},
    ],
    "max_attempts": 2,
}


@pytest.fixture
def operator(operator_user):
    client = APIClient()
    client.credentials(**credentials.jwt_for(operator_user))
    return client


def test_operator_creates_reads_and_lists_a_pipeline(operator):
    response = operator.post(URL, {"name": "words", "description": "d", "config": CONFIG}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["version"] == 1
    assert operator.get(f"{URL}words/").json()["config"] == CONFIG
    assert [p["name"] for p in operator.get(URL).json()["results"]] == ["words"]


def test_submitters_read_but_may_not_write(user):
    Pipeline.objects.create(name="p", config=CONFIG)
    client = APIClient()
    headers = credentials.jwt_for(user)
    assert client.get(URL, **headers).status_code == 200
    assert client.post(URL, {"name": "x", "config": CONFIG}, format="json", **headers).status_code == 403
    assert client.patch(f"{URL}p/", {"description": "x"}, format="json", **headers).status_code == 403
    assert client.delete(f"{URL}p/", **headers).status_code == 403


@pytest.mark.parametrize(
    ("stages", "field"),
    [
        ([{"name": "a", "type": "no_such_type"}], "config.stages[0].type"),
        ([{"name": "a", "type": "sleep", "params": {"seconds": "long"}}], "config.stages[0].params"),
        ([{"name": "a", "type": "echo"}, {"name": "a", "type": "echo"}], "config.stages[1].name"),
        ([{"name": "a", "type": "echo", "retries": 99}], "config.stages[0].retries"),
        ([], "config.stages"),
    ],
)
def test_invalid_configs_are_400_naming_the_stage_and_field(operator, stages, field):
    response = operator.post(URL, {"name": "bad", "config": {"stages": stages}}, format="json")
    assert response.status_code == 400
    assert field in response.json()["details"]["config"]
    assert not Pipeline.objects.filter(name="bad").exists()


def test_invalid_input_schema_is_400(operator):
    config = {"input_schema": {"type": "not-a-type"}, "stages": [{"name": "a", "type": "echo"}]}
    response = operator.post(URL, {"name": "bad", "config": config}, format="json")
    assert "config.input_schema" in response.json()["details"]["config"]


def test_duplicate_or_unslugged_names_are_400(operator):
    operator.post(URL, {"name": "words", "config": CONFIG}, format="json")
    assert "name" in operator.post(URL, {"name": "words", "config": CONFIG}, format="json").json()["details"]
    assert "name" in operator.post(URL, {"name": "no spaces", "config": CONFIG}, format="json").json()["details"]


def test_config_change_bumps_version_and_submitted_jobs_keep_their_snapshot(operator, service_client):
    operator.post(URL, {"name": "words", "config": CONFIG}, format="json")
    job_id = service_client.post(
        "/api/v1/jobs/", {"pipeline": "words", "input_data": {"text": "hello"}}, format="json"
    ).json()["job_id"]

    new_config = {**CONFIG, "stages": [{"name": "only", "type": "echo"}]}
    response = operator.patch(f"{URL}words/", {"config": new_config}, format="json")
    assert response.json()["version"] == 2
    assert operator.patch(f"{URL}words/", {"description": "same config"}, format="json").json()["version"] == 2

    job = Job.objects.get(pk=job_id)
    assert (job.pipeline_version, job.pipeline_config) == (1, CONFIG)
    later = service_client.post("/api/v1/jobs/", {"pipeline": "words", "input_data": {"text": "x"}}, format="json")
    assert later.json()["pipeline_version"] == 2


def test_input_is_validated_against_the_pipeline_schema(operator, service_client):
    operator.post(URL, {"name": "words", "config": CONFIG}, format="json")
    response = service_client.post("/api/v1/jobs/", {"pipeline": "words", "input_data": {"txt": 1}}, format="json")
    assert response.status_code == 400
    assert "input_data" in response.json()["details"]


def test_delete_removes_an_unused_pipeline_and_deactivates_a_used_one(operator):
    operator.post(URL, {"name": "unused", "config": CONFIG}, format="json")
    assert operator.delete(f"{URL}unused/").status_code == 204
    assert not Pipeline.objects.filter(name="unused").exists()

    operator.post(URL, {"name": "used", "config": CONFIG}, format="json")
    JobFactory(pipeline=Pipeline.objects.get(name="used"))
    response = operator.delete(f"{URL}used/")
    assert response.status_code == 200
    assert response.json()["is_active"] is False
    assert Pipeline.objects.get(name="used").is_active is False


def test_inactive_pipeline_refuses_new_jobs(operator, service_client):
    operator.post(URL, {"name": "words", "config": CONFIG, "is_active": False}, format="json")
    response = service_client.post("/api/v1/jobs/", {"pipeline": "words", "input_data": {"text": "x"}}, format="json")
    assert response.status_code == 400
    assert "pipeline" in response.json()["details"]


def test_stage_types_are_listed_with_their_params_schema(user):
    body = APIClient().get("/api/v1/stages/", **credentials.jwt_for(user)).json()
    by_name = {s["name"]: s for s in body}
    assert {"echo", "sleep", "extract_text", "text_stats", "sample_task"} <= set(by_name)
    assert by_name["sleep"]["params_schema"]["required"] == ["seconds"]
    assert by_name["text_stats"]["description"]


def test_admin_validates_and_versions_pipelines(admin_client):
    response = admin_client.post(
        "/admin/pipelines/pipeline/add/",
        {"name": "adm", "description": "", "config": '{"stages": [{"name": "a", "type": "nope"}]}', "is_active": "on"},
    )
    assert response.status_code == 200
    assert "Unknown stage type" in response.content.decode()
    assert not Pipeline.objects.filter(name="adm").exists()

    good = '{"stages": [{"name": "a", "type": "echo"}]}'
    admin_client.post("/admin/pipelines/pipeline/add/", {"name": "adm", "config": good, "is_active": "on"})
    pipeline = Pipeline.objects.get(name="adm")
    changed = '{"stages": [{"name": "b", "type": "echo"}]}'
    admin_client.post(f"/admin/pipelines/pipeline/{pipeline.pk}/change/", {"name": "adm", "config": changed})
    pipeline.refresh_from_db()
    assert (pipeline.version, pipeline.is_active, pipeline.stages[0]["name"]) == (2, False, "b")
