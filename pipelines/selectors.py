"""Reads of pipelines."""

from django.db.models import QuerySet

from .models import Pipeline


def pipeline_list(*, include_inactive: bool = True) -> QuerySet[Pipeline]:
    """Pipelines by name."""
    pipelines = Pipeline.objects.order_by("name")
    return pipelines if include_inactive else pipelines.filter(is_active=True)
