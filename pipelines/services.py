"""Writes to pipelines: creation and updates with config validation."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from audit.services import audit_record

from .models import Pipeline
from .registry import UnknownStageType, get_stage_type, params_errors
from .schemas import schema_errors
from .secrets import config_unmasked, unknown_secrets


class PipelineConfigError(ValueError):
    """The pipeline config is invalid; `errors` maps a field path to messages."""

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__("; ".join(f"{k}: {', '.join(v)}" for k, v in errors.items()))
        self.errors = errors


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def pipeline_config_errors(config: Any, *, stored: dict | None = None) -> dict[str, list[str]]:
    """Check a pipeline config and return its errors by field path (empty when valid).

    `stored` is the config it replaces: a masked credential header counts as
    the stored value it stands for (see `pipelines.secrets`).
    """
    config, errors = config_unmasked(config, stored=stored)
    return {**errors, **_config_errors(config)}


def _config_errors(config: Any) -> dict[str, list[str]]:
    if not isinstance(config, dict):
        return {"config": ["Must be an object."]}
    errors: dict[str, list[str]] = {}
    schema = config.get("input_schema")
    if schema is not None:
        problems = schema_errors(schema)
        if problems:
            errors["config.input_schema"] = problems
    max_attempts = config.get("max_attempts")
    if max_attempts is not None and not (_is_int(max_attempts) and 1 <= max_attempts <= 20):
        errors["config.max_attempts"] = ["Must be an integer from 1 to 20."]
    stages = config.get("stages")
    if not isinstance(stages, list) or not stages:
        errors["config.stages"] = ["Must be a non-empty list of stages."]
        return errors
    seen: set[str] = set()
    for i, spec in enumerate(stages):
        where = f"config.stages[{i}]"
        if not isinstance(spec, dict):
            errors[where] = ["Must be an object."]
            continue
        name, type_name = spec.get("name"), spec.get("type")
        if not isinstance(name, str) or not name:
            errors[f"{where}.name"] = ["Required, a non-empty string."]
        elif name in seen:
            errors[f"{where}.name"] = [f"Duplicate stage name {name!r}."]
        else:
            seen.add(name)
        try:
            stage_type = get_stage_type(type_name)
        except (UnknownStageType, TypeError):
            errors[f"{where}.type"] = [f"Unknown stage type {type_name!r}."]
            continue
        problems = params_errors(stage_type, spec.get("params", {})) + unknown_secrets(spec.get("params"))
        if problems:
            errors[f"{where}.params"] = problems
        for key, low, high in (("retries", 0, 10), ("timeout_s", 1, 86400)):
            value = spec.get(key)
            if value is not None and not (_is_int(value) and low <= value <= high):
                errors[f"{where}.{key}"] = [f"Must be an integer from {low} to {high}."]
    return errors


def _unmasked(config: Any, *, stored: dict | None) -> Any:
    """`config` with its masked credential headers restored from `stored`; PipelineConfigError if one cannot be."""
    config, errors = config_unmasked(config, stored=stored)
    if errors:
        raise PipelineConfigError(errors)
    return config


def _check(config: Any) -> None:
    errors = _config_errors(config)
    if errors:
        raise PipelineConfigError(errors)


@transaction.atomic
def pipeline_create(
    *, name: str, config: dict, description: str = "", is_active: bool = True, created_by=None
) -> Pipeline:
    """Create a pipeline after validating its config."""
    config = _unmasked(config, stored=None)
    _check(config)
    pipeline = Pipeline.objects.create(
        name=name, description=description, config=config, is_active=is_active, created_by=created_by
    )
    audit_record(app="pipelines", entity="pipeline", verb="create", resource_id=pipeline.name)
    return pipeline


@transaction.atomic
def pipeline_ensure(*, name: str, config: dict, description: str = "") -> tuple[Pipeline, str]:
    """Create the pipeline or bring it to `config`; return it and what was done.

    The outcome is "created", "updated" (config changed, version bumped) or
    "unchanged". Used to install the built-in demo pipelines idempotently.
    """
    config = _unmasked(config, stored=None)
    _check(config)
    pipeline = Pipeline.objects.select_for_update().filter(name=name).first()
    if pipeline is None:
        pipeline = Pipeline.objects.create(name=name, description=description, config=config)
        audit_record(app="pipelines", entity="pipeline", verb="create", resource_id=name)
        return pipeline, "created"
    if pipeline.config == config and pipeline.description == description and pipeline.is_active:
        return pipeline, "unchanged"
    if pipeline.config != config:
        pipeline.version += 1
    pipeline.config, pipeline.description, pipeline.is_active = config, description, True
    pipeline.save(update_fields=["config", "description", "is_active", "version", "updated_at"])
    audit_record(
        app="pipelines", entity="pipeline", verb="update", resource_id=name, details={"version": pipeline.version}
    )
    return pipeline, "updated"


@transaction.atomic
def pipeline_update(
    *,
    pipeline: Pipeline,
    name: str | None = None,
    description: str | None = None,
    config: dict | None = None,
    is_active: bool | None = None,
) -> Pipeline:
    """Change a pipeline; a changed config is validated and bumps `version`.

    Jobs already submitted keep the config snapshot they were submitted with.
    A credential header sent back masked keeps its stored value.
    """
    pipeline = Pipeline.objects.select_for_update().get(pk=pipeline.pk)
    changed = []
    if config is not None:
        config = _unmasked(config, stored=pipeline.config)
    if config is not None and config != pipeline.config:
        _check(config)
        pipeline.config = config
        pipeline.version += 1
        changed += ["config", "version"]
    for field, value in (("name", name), ("description", description), ("is_active", is_active)):
        if value is not None and getattr(pipeline, field) != value:
            setattr(pipeline, field, value)
            changed.append(field)
    if changed:
        pipeline.save(update_fields=[*changed, "updated_at"])
        audit_record(
            app="pipelines",
            entity="pipeline",
            verb="update",
            resource_id=pipeline.name,
            details={"changed": changed, "version": pipeline.version},
        )
    return pipeline


@transaction.atomic
def pipeline_delete(*, pipeline: Pipeline) -> bool:
    """Delete a pipeline, or deactivate it when jobs reference it; return whether it was deleted."""
    if pipeline.jobs.exists():
        if pipeline.is_active:
            pipeline.is_active = False
            pipeline.save(update_fields=["is_active", "updated_at"])
        audit_record(app="pipelines", entity="pipeline", verb="deactivate", resource_id=pipeline.name)
        return False
    name = pipeline.name
    pipeline.delete()
    audit_record(app="pipelines", entity="pipeline", verb="delete", resource_id=name)
    return True
