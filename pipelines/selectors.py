"""Reads of pipelines."""

from django.db.models import QuerySet

from .models import Pipeline


def pipeline_list(*, include_inactive: bool = True) -> QuerySet[Pipeline]:
    """Pipelines by name."""
    pipelines = Pipeline.objects.order_by("name")
    return pipelines if include_inactive else pipelines.filter(is_active=True)


def pipeline_by_name_or_id(name_or_id: str, *, pipelines: QuerySet[Pipeline] | None = None) -> Pipeline | None:
    """The pipeline named `name_or_id`; failing that, for a number, the one with that id (seed 002's lookup).

    A name wins: a pipeline whose name is all digits stays reachable by it.
    """
    pipelines = Pipeline.objects.all() if pipelines is None else pipelines
    found = pipelines.filter(name=name_or_id).first()
    if found is None and _is_id(name_or_id):
        found = pipelines.filter(pk=int(name_or_id)).first()
    return found


def active_pipeline_name(pipeline_id: int) -> str | None:
    """The name of the active pipeline with this id, or None."""
    return Pipeline.objects.filter(pk=pipeline_id, is_active=True).values_list("name", flat=True).first()


def active_pipeline_names() -> list[str]:
    """The names of the active pipelines, sorted."""
    return list(pipeline_list(include_inactive=False).values_list("name", flat=True))


def active_pipeline_stage_types() -> set[str]:
    """The stage types that the active pipelines' stages name."""
    configs = pipeline_list(include_inactive=False).values_list("config", flat=True)
    return {stage.get("type") for config in configs for stage in config.get("stages", []) if isinstance(stage, dict)}


def _is_id(value: str) -> bool:
    # A primary key is a bigint: longer digit strings cannot name one (and would overflow the query).
    return value.isascii() and value.isdigit() and len(value) <= 18
