from django.core.validators import validate_slug
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from jobsite.api.validation import validate_storable

from ..models import Pipeline
from ..secrets import config_masked


class PipelineConfigField(serializers.JSONField):
    """A pipeline's config, its credential header values masked when read."""

    def to_representation(self, value):
        return super().to_representation(config_masked(value))


class PipelineSerializer(serializers.ModelSerializer):
    """A pipeline with its full config; `config` is validated by the pipelines service on write."""

    name = serializers.CharField(max_length=100, validators=[validate_slug])
    config = PipelineConfigField(
        help_text='{"input_schema": <JSON Schema>, "stages": [{"name", "type", "params", "retries", "timeout_s"}], '
        '"max_attempts": int}. Credential header values (Authorization, Cookie, *token*, *key*, *secret*, '
        '*password*, *auth*) read as "********"; sending "********" back keeps the stored value.',
        validators=[validate_storable],
    )

    class Meta:
        model = Pipeline
        fields = ["id", "name", "description", "config", "version", "is_active", "created_at", "updated_at"]
        read_only_fields = ["id", "version", "created_at", "updated_at"]


class StageSummarySerializer(serializers.Serializer):
    name = serializers.CharField()
    type = serializers.CharField()


class PipelineSummarySerializer(serializers.ModelSerializer):
    """What a caller who may not read pipeline configs sees: no stage params."""

    input_schema = serializers.SerializerMethodField()
    stages = serializers.SerializerMethodField()

    class Meta:
        model = Pipeline
        fields = ["id", "name", "description", "version", "is_active", "input_schema", "stages"]

    @extend_schema_field(serializers.JSONField(allow_null=True))
    def get_input_schema(self, pipeline):
        return pipeline.config.get("input_schema")

    @extend_schema_field(StageSummarySerializer(many=True))
    def get_stages(self, pipeline):
        return [{"name": stage.get("name"), "type": stage.get("type")} for stage in pipeline.stages]


class StageTypeSerializer(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField()
    params_schema = serializers.JSONField()
