"""The starter job API's contract (seed 004): `/jobs`, with a JWT, the caller's own jobs only.

| method and path | served by |
| --- | --- |
| `POST /jobs` `{job_type, job_parameters}` | :meth:`StarterJobViewSet.create`: the pipeline and its input |
| `GET /jobs` | :meth:`StarterJobViewSet.list`: `status`, `job_type`, `limit`, `offset` |
| `GET /jobs/{job_id}` | :meth:`StarterJobViewSet.retrieve` |

`/health` and `/health/db` are jobsite's own; `/docs` redirects to the API
documentation. Callers are users (a JWT from `POST /api/v1/auth/login/`, or a
user's API key); every list and lookup is narrowed to the jobs filed under
the caller, whatever else the caller may see. Statuses are jobsite's own (the
starter's `pending`, `processing` and `failed` among them). Errors carry
`request_id` (jobsite's envelope) and FastAPI's `detail`; invalid input is a
422.
"""

from __future__ import annotations

import uuid
from typing import Any

import django_filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.response import Response
from rest_framework_simplejwt.authentication import JWTAuthentication

from jobsite.api.authentication import ApiKeyAuthentication
from jobsite.api.pagination import JobListPagination
from jobsite.api.validation import validate_storable
from jobsite.api.views import GenericViewSet
from pipelines.selectors import active_pipeline_names

from ... import selectors, services
from ...filters import STATUS_VALUES, filter_statuses, parse_statuses
from ...models import Job
from ..serializers import BlankAsNullField, inline_result
from ..submitting import JobSubmitting
from .fastapi import FastApiErrors, enum_error

STARTER_TAG = "Starter job API (seed 004)"


class StarterJobCreateSerializer(serializers.Serializer):
    """The starter's `JobCreateRequest`."""

    job_type = serializers.CharField(source="pipeline", max_length=100, help_text="An active pipeline's name.")
    job_parameters = serializers.JSONField(
        source="input_data", default=dict, help_text="A JSON object: the pipeline's input."
    )

    def validate_job_parameters(self, value):
        if not isinstance(value, dict):
            raise serializers.ValidationError("Input should be a valid dictionary.", code="dict_type")
        validate_storable(value)
        return value


class StarterJobSerializer(serializers.ModelSerializer):
    """The starter's `JobResponse` as listed; jobsite's extras after its fields."""

    job_id = serializers.UUIDField(source="id", read_only=True)
    job_type = serializers.CharField(source="pipeline.name", read_only=True)
    job_parameters = serializers.JSONField(source="input_data", read_only=True)
    error_message = BlankAsNullField()

    class Meta:
        model = Job
        fields = [
            "job_id",
            "job_type",
            "status",
            "user_id",
            "job_parameters",
            "error_message",
            "created_at",
            "updated_at",
            "started_at",
            "completed_at",
            "duration_ms",
            "progress",
            "attempts",
            "max_attempts",
        ]


class StarterJobDetailSerializer(StarterJobSerializer):
    """The starter's `JobResponse`, with the job's result once it has completed."""

    result = serializers.SerializerMethodField(
        help_text="The result of a completed job (null otherwise; a result stored as a file is at "
        "`GET /api/v1/jobs/{id}/result/`)."
    )

    class Meta(StarterJobSerializer.Meta):
        fields = [*StarterJobSerializer.Meta.fields, "result"]

    def get_result(self, job) -> Any:
        return inline_result(job)


class StarterJobFilter(django_filters.FilterSet):
    status = django_filters.CharFilter(
        method="filter_status", help_text=f"A status or status group: {', '.join(STATUS_VALUES)}."
    )
    job_type = django_filters.CharFilter(field_name="pipeline__name", help_text="Exact job type.")

    def filter_status(self, queryset, name, value):
        try:
            statuses = parse_statuses(value)
        except exceptions.ValidationError:
            raise enum_error("status", value, STATUS_VALUES, location="query") from None
        return filter_statuses(queryset, statuses)


STARTER_ERROR = OpenApiResponse(
    description="jobsite's envelope (`request_id` included) plus FastAPI's `detail` (a 422 lists `{loc, msg, type}`)."
)
JOB_ID = OpenApiParameter("job_id", OpenApiTypes.UUID, OpenApiParameter.PATH)


class StarterJobViewSet(JobSubmitting, GenericViewSet):
    """The starter job API: a user's own jobs."""

    authentication_classes = [JWTAuthentication, ApiKeyAuthentication, SessionAuthentication]
    error_contract = FastApiErrors()
    serializer_class = StarterJobSerializer
    filterset_class = StarterJobFilter
    pagination_class = JobListPagination
    submit_serializer_class = StarterJobCreateSerializer
    submit_error_fields = {"pipeline": "job_type", "input_data": "job_parameters"}
    operation_permissions = {"list": "jobs.view_job", "retrieve": "jobs.view_job", "create": "jobs.add_job"}

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Job.objects.none()
        if self.action == "list":
            return selectors.job_list_own(user=self.request.user)
        return selectors.job_detail_own(user=self.request.user)

    def submit_errors(self, exc: services.JobSubmitError) -> exceptions.ValidationError:
        if "pipeline" in exc.errors:
            return enum_error("job_type", self.request.data.get("job_type"), active_pipeline_names(), location="body")
        return super().submit_errors(exc)

    @extend_schema(
        tags=[STARTER_TAG],
        operation_id="starter_jobs_create",
        summary="Create a job (JobCreateRequest)",
        description="`job_type` names an active pipeline (an unknown one is a 422 listing them), "
        "`job_parameters` is its input. 201 with the job, filed under the caller.",
        request=StarterJobCreateSerializer,
        examples=[OpenApiExample("Sample task", value={"job_type": "sample_task", "job_parameters": {}})],
        responses={201: StarterJobDetailSerializer, 401: STARTER_ERROR, 403: STARTER_ERROR, 422: STARTER_ERROR},
    )
    def create(self, request):
        if not isinstance(request.data, dict):
            raise exceptions.ValidationError(
                [serializers.ErrorDetail("Input should be a valid dictionary.", code="dict_type")]
            )
        job = self.submit(self.submission(request.data))
        return Response(
            StarterJobDetailSerializer(job, context={"request": request}).data, status=status.HTTP_201_CREATED
        )

    @extend_schema(
        tags=[STARTER_TAG],
        operation_id="starter_jobs_list",
        summary="The caller's jobs, newest first (JobListResponse)",
        description="`{jobs, total, limit, offset, total_estimated, next, previous}`; `limit` 1..200 (default 50), "
        "`offset` >= 0: anything else is a 422, as an unknown `status`. An unknown parameter is a 400.",
        responses={200: StarterJobSerializer(many=True), 400: STARTER_ERROR, 401: STARTER_ERROR, 422: STARTER_ERROR},
    )
    def list(self, request):
        queryset = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    @extend_schema(
        tags=[STARTER_TAG],
        operation_id="starter_jobs_retrieve",
        summary="One of the caller's jobs (JobResponse)",
        parameters=[JOB_ID],
        responses={200: StarterJobDetailSerializer, 401: STARTER_ERROR, 404: STARTER_ERROR},
    )
    def retrieve(self, request, job_id: str):
        try:
            pk = uuid.UUID(job_id)
        except ValueError:
            raise exceptions.NotFound("Job not found.") from None
        job = self.get_queryset().filter(pk=pk).first()
        if job is None:
            raise exceptions.NotFound("Job not found.")
        return Response(StarterJobDetailSerializer(job, context={"request": request}).data)
