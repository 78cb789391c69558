"""Pipelines CRUD and the list of stage types."""

from django.db import IntegrityError
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from jobsite.api.views import GenericViewSet, ViewSet

from .. import selectors, services
from ..registry import stage_types
from .serializers import PipelineSerializer, StageTypeSerializer


def _config_errors(exc: services.PipelineConfigError) -> ValidationError:
    return ValidationError({"config": exc.errors})


class PipelineViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, mixins.UpdateModelMixin, GenericViewSet
):
    """Pipelines: anyone signed in reads them, operators write them."""

    serializer_class = PipelineSerializer
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
        responses={
            204: OpenApiResponse(description="Deleted."),
            200: OpenApiResponse(PipelineSerializer, description="Jobs reference it: deactivated instead."),
        }
    )
    def destroy(self, request, *args, **kwargs):
        pipeline = self.get_object()
        if services.pipeline_delete(pipeline=pipeline):
            return Response(status=status.HTTP_204_NO_CONTENT)
        pipeline.refresh_from_db()
        return Response(PipelineSerializer(pipeline).data)


class StageTypeViewSet(ViewSet):
    """The registered stage types with their params schema."""

    @extend_schema(responses={200: StageTypeSerializer(many=True)})
    def list(self, request):
        return Response(StageTypeSerializer(stage_types(), many=True).data)
