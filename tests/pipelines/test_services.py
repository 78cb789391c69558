"""Pipeline config validation and the idempotent pipeline_ensure."""

import copy

import pytest

from pipelines.models import Pipeline
from pipelines.services import PipelineConfigError, pipeline_config_errors, pipeline_create, pipeline_ensure

VALID_CONFIG = {
    "input_schema": {"type": "object", "properties": {"text": {"type": "string"}}},
    "stages": [
        {"name": "extract", "type": "extract_text", "params": {}},
        {"name": "stats", "type": "text_stats", "params": {"top": 5}, "retries": 2, "timeout_s": 30},
    ],
    "max_attempts": 3,
}


def config_with(**changes):
    config = copy.deepcopy(VALID_CONFIG)
    config.update(changes)
    return config


def test_a_valid_config_has_no_errors():
    assert pipeline_config_errors(VALID_CONFIG) == {}


def test_a_config_without_input_schema_or_max_attempts_is_valid():
    assert pipeline_config_errors({"stages": [{"name": "only", "type": "echo"}]}) == {}


def test_unknown_stage_type_is_reported_at_its_stage_path():
    config = config_with(stages=[VALID_CONFIG["stages"][0], {"name": "mystery", "type": "no_such_type"}])

    errors = pipeline_config_errors(config)

    assert list(errors) == ["config.stages[1].type"]
    assert "no_such_type" in errors["config.stages[1].type"][0]


@pytest.mark.parametrize("type_name", [None, ["echo"], 7])
def test_missing_or_non_string_stage_type_is_reported_as_unknown(type_name):
    errors = pipeline_config_errors(config_with(stages=[{"name": "a", "type": type_name}]))

    assert list(errors) == ["config.stages[0].type"]


def test_bad_params_are_reported_at_the_stage_params_path():
    config = config_with(stages=[{"name": "nap", "type": "sleep", "params": {"seconds": -5}}])

    errors = pipeline_config_errors(config)

    assert errors == {"config.stages[0].params": ["seconds: -5 is less than the minimum of 0"]}


def test_missing_params_are_checked_against_the_stage_schema():
    errors = pipeline_config_errors(config_with(stages=[{"name": "nap", "type": "sleep"}]))

    assert errors == {"config.stages[0].params": ["params: 'seconds' is a required property"]}


def test_duplicate_stage_names_are_reported_at_the_second_occurrence():
    config = config_with(stages=[{"name": "same", "type": "echo"}, {"name": "same", "type": "echo"}])

    errors = pipeline_config_errors(config)

    assert list(errors) == ["config.stages[1].name"]
    assert "Duplicate" in errors["config.stages[1].name"][0]


@pytest.mark.parametrize("name", [None, "", 5])
def test_stage_without_a_string_name_is_reported(name):
    errors = pipeline_config_errors(config_with(stages=[{"name": name, "type": "echo"}]))

    assert list(errors) == ["config.stages[0].name"]


def test_invalid_input_schema_is_reported():
    errors = pipeline_config_errors(config_with(input_schema={"type": "not-a-type"}))

    assert list(errors) == ["config.input_schema"]
    assert errors["config.input_schema"][0].startswith("Not a valid JSON Schema")


@pytest.mark.parametrize("stages", [[], None, "extract", {"name": "x", "type": "echo"}])
def test_empty_or_missing_stages_are_reported(stages):
    config = config_with(stages=stages)

    assert pipeline_config_errors(config) == {"config.stages": ["Must be a non-empty list of stages."]}


def test_a_stage_that_is_not_an_object_is_reported():
    errors = pipeline_config_errors(config_with(stages=[{"name": "ok", "type": "echo"}, "echo"]))

    assert errors == {"config.stages[1]": ["Must be an object."]}


@pytest.mark.parametrize("max_attempts", [0, 21, "3", 2.5])
def test_max_attempts_out_of_range_is_reported(max_attempts):
    errors = pipeline_config_errors(config_with(max_attempts=max_attempts))

    assert list(errors) == ["config.max_attempts"]


def test_boolean_max_attempts_is_reported():
    assert list(pipeline_config_errors(config_with(max_attempts=True))) == ["config.max_attempts"]


@pytest.mark.parametrize(
    ("key", "value"),
    [("retries", -1), ("retries", 11), ("timeout_s", 0), ("timeout_s", 86401), ("timeout_s", "30")],
)
def test_stage_retries_and_timeout_out_of_range_are_reported(key, value):
    config = config_with(stages=[{"name": "a", "type": "echo", key: value}])

    assert list(pipeline_config_errors(config)) == [f"config.stages[0].{key}"]


def test_every_problem_is_reported_at_once():
    config = {
        "input_schema": {"type": 12},
        "max_attempts": 0,
        "stages": [
            {"name": "a", "type": "echo"},
            {"name": "a", "type": "nope"},
            {"name": "c", "type": "sleep", "params": {}},
        ],
    }

    assert set(pipeline_config_errors(config)) == {
        "config.input_schema",
        "config.max_attempts",
        "config.stages[1].name",
        "config.stages[1].type",
        "config.stages[2].params",
    }


def test_a_config_that_is_not_an_object_is_reported():
    assert pipeline_config_errors(["stages"]) == {"config": ["Must be an object."]}


# --- pipeline_create / pipeline_ensure -------------------------------------------


def test_pipeline_create_refuses_an_invalid_config_and_creates_nothing(db):
    with pytest.raises(PipelineConfigError) as excinfo:
        pipeline_create(name="broken", config=config_with(stages=[]))

    assert excinfo.value.errors == {"config.stages": ["Must be a non-empty list of stages."]}
    assert not Pipeline.objects.filter(name="broken").exists()


def test_pipeline_ensure_creates_a_missing_pipeline_at_version_1(db):
    pipeline, outcome = pipeline_ensure(name="analysis", config=VALID_CONFIG, description="Counts words.")

    assert outcome == "created"
    stored = Pipeline.objects.get(name="analysis")
    assert stored.pk == pipeline.pk
    assert stored.version == 1
    assert stored.config == VALID_CONFIG
    assert stored.description == "Counts words."


def test_pipeline_ensure_leaves_an_identical_pipeline_unchanged(db):
    created, _ = pipeline_ensure(name="analysis", config=VALID_CONFIG, description="Counts words.")

    pipeline, outcome = pipeline_ensure(
        name="analysis", config=copy.deepcopy(VALID_CONFIG), description="Counts words."
    )

    assert outcome == "unchanged"
    assert pipeline.pk == created.pk
    assert Pipeline.objects.get(pk=created.pk).version == 1
    assert Pipeline.objects.filter(name="analysis").count() == 1


def test_pipeline_ensure_bumps_the_version_when_the_config_changes(db):
    pipeline_ensure(name="analysis", config=VALID_CONFIG)
    changed = config_with(max_attempts=5)

    pipeline, outcome = pipeline_ensure(name="analysis", config=changed)

    assert outcome == "updated"
    stored = Pipeline.objects.get(name="analysis")
    assert stored.version == 2
    assert stored.config == changed
    assert pipeline.version == 2


def test_pipeline_ensure_updates_the_description_without_bumping_the_version(db):
    pipeline_ensure(name="analysis", config=VALID_CONFIG, description="old")

    _, outcome = pipeline_ensure(name="analysis", config=VALID_CONFIG, description="new")

    assert outcome == "updated"
    stored = Pipeline.objects.get(name="analysis")
    assert (stored.description, stored.version) == ("new", 1)


def test_pipeline_ensure_reactivates_an_inactive_pipeline(db):
    pipeline, _ = pipeline_ensure(name="analysis", config=VALID_CONFIG)
    Pipeline.objects.filter(pk=pipeline.pk).update(is_active=False)

    _, outcome = pipeline_ensure(name="analysis", config=VALID_CONFIG)

    assert outcome == "updated"
    assert Pipeline.objects.get(pk=pipeline.pk).is_active is True


def test_pipeline_ensure_refuses_an_invalid_config_and_keeps_the_stored_one(db):
    pipeline_ensure(name="analysis", config=VALID_CONFIG)

    with pytest.raises(PipelineConfigError) as excinfo:
        pipeline_ensure(name="analysis", config=config_with(stages=[{"name": "x", "type": "nope"}]))

    assert list(excinfo.value.errors) == ["config.stages[0].type"]
    stored = Pipeline.objects.get(name="analysis")
    assert (stored.config, stored.version) == (VALID_CONFIG, 1)
