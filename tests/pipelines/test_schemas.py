"""Input schemas resolve references only inside themselves: nothing is fetched, on write or on submission."""

import pytest
from rest_framework.test import APIClient

from pipelines.models import Pipeline
from pipelines.schemas import input_validator, schema_errors
from tests import credentials

URL = "/api/v1/pipelines/"


@pytest.fixture
def operator(operator_user):
    client = APIClient()
    client.credentials(**credentials.jwt_for(operator_user))
    return client


def config_with(schema):
    return {"input_schema": schema, "stages": [{"name": "a", "type": "echo"}]}


def external_schemas(server_url):
    """Schemas whose references point outside themselves, each in a different way."""
    return {
        "http": {"type": "object", "properties": {"n": {"$ref": server_url}}},
        "file": {"$ref": "file:///etc/passwd"},
        "relative to no $id": {"properties": {"n": {"$ref": "definitions.json#/n"}}},
        "relative to a remote $id": {"$id": server_url, "properties": {"n": {"$ref": "other.json"}}},
        "dynamic": {"$dynamicRef": server_url + "#meta"},
        "meta-schema": {"$ref": "https://json-schema.org/draft/2020-12/schema"},
        "missing pointer": {"$ref": "#/$defs/missing"},
        "through $defs": {"$defs": {"n": {"$ref": server_url}}, "properties": {"n": {"$ref": "#/$defs/n"}}},
    }


def test_every_external_reference_is_400_at_write_and_nothing_is_fetched(operator, httpserver):
    httpserver.expect_request("/schema.json").respond_with_json({"type": "integer"})
    for kind, schema in external_schemas(httpserver.url_for("/schema.json")).items():
        response = operator.post(URL, {"name": "remote", "config": config_with(schema)}, format="json")

        assert response.status_code == 400, kind
        assert "does not resolve inside the schema" in response.json()["details"]["config"]["config.input_schema"][0]
    assert httpserver.log == []
    assert not Pipeline.objects.filter(name="remote").exists()


def test_an_external_reference_is_400_on_update_too(operator, httpserver):
    operator.post(URL, {"name": "p", "config": config_with({"type": "object"})}, format="json")
    schema = {"properties": {"n": {"$ref": httpserver.url_for("/schema.json")}}}

    response = operator.patch(f"{URL}p/", {"config": config_with(schema)}, format="json")

    assert response.status_code == 400
    assert "config.input_schema" in response.json()["details"]["config"]
    assert Pipeline.objects.get(name="p").version == 1


@pytest.mark.parametrize(
    "schema",
    [
        {"$defs": {"n": {"type": "integer"}}, "properties": {"n": {"$ref": "#/$defs/n"}}},
        {"$defs": {"n": {"$anchor": "number", "type": "integer"}}, "properties": {"n": {"$ref": "#number"}}},
        {
            "$id": "https://schemas.example.com/job",
            "$defs": {"n": {"$id": "number.json", "type": "integer"}},
            "properties": {"n": {"$ref": "number.json"}},
        },
        {"$dynamicAnchor": "node", "properties": {"n": {"type": "integer"}, "child": {"$dynamicRef": "#node"}}},
    ],
    ids=["pointer", "anchor", "embedded $id", "dynamic anchor"],
)
def test_references_inside_the_schema_work(operator, service_client, schema):
    assert schema_errors(schema) == []
    response = operator.post(URL, {"name": "local", "config": config_with({"type": "object", **schema})}, format="json")
    assert response.status_code == 201, response.content

    submit = {"pipeline": "local", "input_data": {"n": 1}}
    assert service_client.post("/api/v1/jobs/", submit, format="json").status_code == 201
    submit["input_data"] = {"n": "one"}
    assert service_client.post("/api/v1/jobs/", submit, format="json").status_code == 400
    errors = [e.message for e in input_validator(schema).iter_errors({"n": "one"})]
    assert errors == ["'one' is not of type 'integer'"]


def test_the_input_validator_of_a_stored_external_reference_fetches_nothing(httpserver):
    httpserver.expect_request("/schema.json").respond_with_json({"type": "integer"})
    for kind, schema in external_schemas(httpserver.url_for("/schema.json")).items():
        errors = [e.message for e in input_validator(schema).iter_errors({"n": "x"})]

        if kind != "meta-schema":  # bundled with jsonschema: read locally (the write check refuses it all the same)
            assert any("does not resolve inside the schema" in e for e in errors), kind
    assert httpserver.log == []


def test_the_input_validator_is_compiled_once_per_schema():
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    same = {"required": ["n"], "properties": {"n": {"type": "integer"}}, "type": "object"}

    assert input_validator(schema) is input_validator(same)
    assert input_validator(schema) is not input_validator({**schema, "required": []})
    schema["required"].append("m")  # the caller's dict changing later does not change the cached validator
    assert input_validator(same).is_valid({"n": 1})


def test_a_submission_to_a_stored_pipeline_with_an_external_reference_is_400_and_fetches_nothing(
    db, service_client, httpserver
):
    httpserver.expect_request("/schema.json").respond_with_json({"type": "integer"})
    schema = {"type": "object", "properties": {"n": {"$ref": httpserver.url_for("/schema.json")}}}
    Pipeline.objects.create(name="old", config=config_with(schema))  # stored before references were checked

    response = service_client.post("/api/v1/jobs/", {"pipeline": "old", "input_data": {"n": "x"}}, format="json")

    assert httpserver.log == []
    assert response.status_code == 400
    assert "does not resolve inside the schema" in str(response.json()["details"]["input_data"])
