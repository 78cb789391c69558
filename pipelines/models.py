"""Pipelines: named, versioned lists of stages that jobs run."""

from django.conf import settings
from django.core.validators import validate_slug
from django.db import models


class Pipeline(models.Model):
    """A workflow stored in the database.

    `config` is `{"input_schema": <JSON Schema>, "stages": [{"name", "type",
    "params", "retries", "timeout_s"}], "max_attempts": int}`. Every change of
    `config` bumps `version`; a job keeps the snapshot it was submitted with.
    """

    name = models.CharField(max_length=100, unique=True, validators=[validate_slug])
    description = models.TextField(blank=True, default="")
    config = models.JSONField(default=dict)
    version = models.PositiveIntegerField(default=1)
    is_active = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return f"{self.name} v{self.version}"

    @property
    def stages(self) -> list[dict]:
        return self.config.get("stages", [])
