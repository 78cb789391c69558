"""Pipelines CRUD and the list of stage types."""

from django.db import IntegrityError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
    extend_schema_view,
)
from rest_framework import mixins, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response

from jobsite.api.parsers import LimitedJSONParser
from jobsite.api.permissions import principal_has_perm
from jobsite.api.schema import PRODUCTION_JOB_SYSTEM_TAG
from jobsite.api.views import GenericViewSet, ViewSet

from .. import selectors, services
from ..registry import stage_types
from ..secrets import config_masked
from .serializers import PipelineSerializer, PipelineSummarySerializer, StageTypeSerializer

READ_CONFIG_PERMISSION = "pipelines.view_pipeline"


def _pipeline_read(*, many: bool = False) -> PolymorphicProxySerializer:
    """The documented response: a pipeline with its config, or its outline."""
    return PolymorphicProxySerializer(
        component_name="PipelineRead",
        serializers=[PipelineSerializer, PipelineSummarySerializer],
        resource_type_field_name=None,
        many=many,
    )


PIPELINE_READ = _pipeline_read()
PIPELINE_TAGS = ["pipelines", PRODUCTION_JOB_SYSTEM_TAG]
NAME_OR_ID = OpenApiParameter(
    "name",
    OpenApiTypes.STR,
    OpenApiParameter.PATH,
    description="The pipeline's name, or its numeric `id` (a name made only of digits is looked up as a name first).",
)


def _config_errors(exc: services.PipelineConfigError) -> ValidationError:
    return ValidationError({"config": exc.errors})


class PipelineBodyParser(LimitedJSONParser):
    """The JSON parser, keeping credential header values out of the audit log's copy of the body."""

    def parse(self, stream, media_type=None, parser_context=None):
        data = super().parse(stream, media_type, parser_context)
        django_request = getattr((parser_context or {}).get("request"), "_request", None)
        if isinstance(data, dict) and "config" in data and hasattr(django_request, "audit_body"):
            django_request.audit_body = {**data, "config": config_masked(data["config"])}
        return data


@extend_schema_view(
    list=extend_schema(
        tags=PIPELINE_TAGS,
        responses=_pipeline_read(many=True),
        description="Callers with `pipelines.view_pipeline` (operators; keys need the `pipelines:read` scope) "
        "get each pipeline's config, credential headers masked; others get its name, description, version, "
        "state, input schema and stage names and types.",
    ),
    retrieve=extend_schema(tags=PIPELINE_TAGS, parameters=[NAME_OR_ID], responses=PIPELINE_READ),
    create=extend_schema(tags=PIPELINE_TAGS, responses={201: PIPELINE_READ}),
    update=extend_schema(tags=PIPELINE_TAGS, parameters=[NAME_OR_ID], responses=PIPELINE_READ),
    partial_update=extend_schema(tags=PIPELINE_TAGS, parameters=[NAME_OR_ID], responses=PIPELINE_READ),
)
class PipelineViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, mixins.UpdateModelMixin, GenericViewSet
):
    """Pipelines: anyone signed in reads their outline, `pipelines:read` reads configs, operators write them."""

    serializer_class = PipelineSerializer
    parser_classes = [PipelineBodyParser]
    lookup_field = "name"
    lookup_value_regex = "[-a-zA-Z0-9_]+"
    operation_permissions = {
        "create": "pipelines.add_pipeline",
        "update": "pipelines.change_pipeline",
        "partial_update": "pipelines.change_pipeline",
        "destroy": "pipelines.delete_pipeline",
    }

    def get_queryset(self):
        return selectors.pipeline_list()

    def get_object(self):
        """The pipeline named in the path, or with that numeric id (the production job system's ids)."""
        pipeline = selectors.pipeline_by_name_or_id(self.kwargs[self.lookup_field], pipelines=self.get_queryset())
        if pipeline is None:
            raise NotFound()
        self.check_object_permissions(self.request, pipeline)
        return pipeline

    def reads_config(self) -> bool:
        """Whether the caller may read pipeline configs (stage params), not only their outline."""
        return principal_has_perm(self.request, READ_CONFIG_PERMISSION)

    def get_serializer_class(self):
        if self.action in ("list", "retrieve") and not getattr(self, "swagger_fake_view", False):
            return PipelineSerializer if self.reads_config() else PipelineSummarySerializer
        return PipelineSerializer

    def represent(self, pipeline):
        serializer_class = PipelineSerializer if self.reads_config() else PipelineSummarySerializer
        return serializer_class(pipeline, context=self.get_serializer_context()).data

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        self.perform_create(serializer)
        return Response(self.represent(serializer.instance), status=status.HTTP_201_CREATED)

    def update(self, request, *args, **kwargs):
        serializer = self.get_serializer(self.get_object(), data=request.data, partial=kwargs.pop("partial", False))
        serializer.is_valid(raise_exception=True)
        self.perform_update(serializer)
        return Response(self.represent(serializer.instance))

    def perform_create(self, serializer):
        created_by = self.request.user if getattr(self.request.user, "pk", None) else None
        try:
            serializer.instance = services.pipeline_create(created_by=created_by, **serializer.validated_data)
        except services.PipelineConfigError as exc:
            raise _config_errors(exc) from exc
        except IntegrityError as exc:
            raise ValidationError({"name": ["A pipeline with this name exists."]}) from exc

    def perform_update(self, serializer):
        try:
            serializer.instance = services.pipeline_update(pipeline=serializer.instance, **serializer.validated_data)
        except services.PipelineConfigError as exc:
            raise _config_errors(exc) from exc
        except IntegrityError as exc:
            raise ValidationError({"name": ["A pipeline with this name exists."]}) from exc

    @extend_schema(
        tags=PIPELINE_TAGS,
        parameters=[NAME_OR_ID],
        responses={
            204: OpenApiResponse(description="Deleted."),
            200: OpenApiResponse(PIPELINE_READ, description="Jobs reference it: deactivated instead."),
        },
    )
    def destroy(self, request, *args, **kwargs):
        pipeline = self.get_object()
        if services.pipeline_delete(pipeline=pipeline):
            return Response(status=status.HTTP_204_NO_CONTENT)
        pipeline.refresh_from_db()
        return Response(self.represent(pipeline))


class StageTypeViewSet(ViewSet):
    """The registered stage types with their params schema."""

    @extend_schema(responses={200: StageTypeSerializer(many=True)})
    def list(self, request):
        return Response(StageTypeSerializer(stage_types(), many=True).data)
