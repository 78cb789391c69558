from django.core.validators import validate_slug
from rest_framework import serializers

from jobsite.api.validation import validate_storable

from ..models import Pipeline


class PipelineSerializer(serializers.ModelSerializer):
    """A pipeline; `config` is validated by the pipelines service on write."""

    name = serializers.CharField(max_length=100, validators=[validate_slug])
    config = serializers.JSONField(
        help_text='{"input_schema": <JSON Schema>, "stages": [{"name", "type", "params", "retries", "timeout_s"}], '
        '"max_attempts": int}',
        validators=[validate_storable],
    )

    class Meta:
        model = Pipeline
        fields = ["id", "name", "description", "config", "version", "is_active", "created_at", "updated_at"]
        read_only_fields = ["id", "version", "created_at", "updated_at"]


class StageTypeSerializer(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField()
    params_schema = serializers.JSONField()
