"""The jobs endpoints: submit, validate, batch, list, detail, result, cancel, retry, stats."""

import json
import logging
import uuid

from django.http import StreamingHttpResponse
from dramatiq.errors import BrokerConnectionError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from jobsite.api.errors import ApiError
from jobsite.api.pagination import JobListPagination
from jobsite.api.representation import represent
from jobsite.api.schema import PRODUCTION_JOB_SYSTEM_TAG
from jobsite.api.views import GenericViewSet
from jobsite.broker.depth import broker_queue_depths
from webhooks.api.views import JOB_DELIVERIES_SCHEMA, job_deliveries_response

from .. import selectors, services
from ..filters import JobFilter
from ..models import Job, JobStatus
from ..stats import WINDOWS, job_stats
from .errors import IdempotencyKeyReusedError, JobStateConflict
from .seeds.llm_workflow import LLM_WORKFLOW_ERRORS, LLM_WORKFLOW_TAG
from .serializers import (
    JobBatchResultSerializer,
    JobBatchSerializer,
    JobDetailSerializer,
    JobResultSerializer,
    JobRetrySerializer,
    JobSubmitSerializer,
    JobSubmittedSerializer,
    JobSummarySerializer,
    JobValidSerializer,
)
from .submitting import JobSubmitting

logger = logging.getLogger(__name__)

SUBMIT_EXAMPLE = OpenApiExample(
    "Text analysis",
    value={"pipeline": "text-analysis", "input_data": {"html": "<p>Hello jobsite.</p>"}, "priority": 5},
    request_only=True,
)
ERROR_RESPONSE = OpenApiResponse(description="The error envelope: `{error, message, details, request_id}`.")
IDEMPOTENCY_HEADER = OpenApiParameter(
    "Idempotency-Key", OpenApiTypes.STR, OpenApiParameter.HEADER, description="Same as the `idempotency_key` field."
)
LIST_DESCRIPTION = (
    "The LLM workflow service's `GET /api/v1/jobs` (its dashboard's LLM Queue tab calls it with `status` and "
    "`limit_results`), with jobsite's filters. `{jobs, total, limit, offset}` plus `total_estimated`, `next`, "
    "`previous`; each job is the service's `JobSummary` plus jobsite's extras.\n\n"
    "Errors add the service's `detail`: an unknown `status` is a 400 whose `detail` is a string naming it; a "
    "bad `limit_results` a 400 whose `detail` is `{error: InvalidLimitResults, message, limit_results, "
    "valid_values}` (`valid_values` only when it is not a number); `limit` outside 1..200 or `offset` below 0 "
    "a 422 whose `detail` lists `{loc, msg, type}`; a wrong or missing `X-API-Secret` a 401 whose `detail` is "
    "`{error: InvalidAPISecret, message}`; an unknown parameter a 400."
)


def _streamed_result(result) -> StreamingHttpResponse:
    """The same `{job_id, result, metadata, ...}` body as an inline result, its `result` streamed from the file.

    A large result is never loaded into memory: the envelope is written
    around the stored JSON. `X-Result-Checksum` is the SHA-256 of that JSON.
    """
    marker = f"__result_{uuid.uuid4().hex}__"
    envelope = dict(JobResultSerializer(result).data, result=marker)
    head, tail = json.dumps(envelope).split(json.dumps(marker))

    def body():
        yield head.encode()
        with result.result_file.open("rb") as stored:
            while chunk := stored.read(256 * 1024):
                yield chunk
        yield tail.encode()

    response = StreamingHttpResponse(body(), content_type="application/json")
    response["X-Result-Checksum"] = f"sha256={result.checksum}"
    return response


@extend_schema_view(
    list=extend_schema(
        summary="List jobs, newest first",
        description=LIST_DESCRIPTION,
        tags=["jobs", LLM_WORKFLOW_TAG],
        responses={200: JobSummarySerializer(many=True), 400: ERROR_RESPONSE, 401: ERROR_RESPONSE, 422: ERROR_RESPONSE},
    ),
    retrieve=extend_schema(summary="One job with its stages and progress", responses={200: JobDetailSerializer}),
)
class JobViewSet(JobSubmitting, mixins.ListModelMixin, mixins.RetrieveModelMixin, GenericViewSet):
    """Submit jobs, list and follow them, fetch their results, cancel and retry them."""

    serializer_class = JobSummarySerializer
    filterset_class = JobFilter
    pagination_class = JobListPagination
    operation_permissions = {
        "list": "jobs.view_job",
        "retrieve": "jobs.view_job",
        "result": "jobs.view_job",
        "stats": "jobs.view_job",
        "create": "jobs.add_job",
        "validate": "jobs.add_job",
        "batch": "jobs.add_job",
        "cancel": "jobs.cancel_job",
        "destroy": "jobs.cancel_job",
        "retry": "jobs.retry_job",
        "deliveries": "webhooks.view_webhookdelivery",
    }

    @property
    def error_contract(self):
        """The list is the LLM workflow service's `GET /api/v1/jobs`: its clients read its error bodies."""
        return LLM_WORKFLOW_ERRORS if self.action == "list" else None

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Job.objects.none()
        if self.action == "list":
            return selectors.job_list(user=self.request.user)
        return selectors.job_detail(user=self.request.user)

    def get_serializer_class(self):
        if self.action == "retrieve":
            return JobDetailSerializer
        if self.action in ("create", "validate"):
            return JobSubmitSerializer
        return JobSummarySerializer

    # -- submitting ---------------------------------------------------------------

    def _submitted(self, job) -> dict:
        """The answer for a submitted job, from the object in hand (a new job has no stage runs yet)."""
        return represent(JobSubmittedSerializer, job, request=self.request, new_job=not job.duplicate)

    @extend_schema(
        summary="Submit a job",
        description="Name the pipeline by `pipeline`, `workflow_name` or `pipeline_id` (its numeric id).",
        tags=["jobs", PRODUCTION_JOB_SYSTEM_TAG],
        request=JobSubmitSerializer,
        parameters=[IDEMPOTENCY_HEADER],
        examples=[SUBMIT_EXAMPLE],
        responses={
            201: JobSubmittedSerializer,
            200: OpenApiResponse(JobSubmittedSerializer, description="A duplicate: the earlier job."),
            400: ERROR_RESPONSE,
            403: ERROR_RESPONSE,
            422: OpenApiResponse(description="`idempotency_key_reused`: the key came with a different submission."),
        },
    )
    def create(self, request):
        job = self.submit(self.submission(request.data, header_key=self.idempotency_header()))
        return Response(self._submitted(job), status=status.HTTP_200_OK if job.duplicate else status.HTTP_201_CREATED)

    @extend_schema(
        summary="Check a submission without creating anything",
        request=JobSubmitSerializer,
        examples=[SUBMIT_EXAMPLE],
        responses={200: JobValidSerializer, 400: ERROR_RESPONSE},
    )
    @action(detail=False, methods=["post"])
    def validate(self, request):
        self.validate_submission(self.submission(request.data))
        return Response({"valid": True})

    @extend_schema(
        summary="Submit up to 500 jobs, each on its own",
        request=JobBatchSerializer,
        responses={200: JobBatchResultSerializer, 400: ERROR_RESPONSE},
    )
    @action(detail=False, methods=["post"])
    def batch(self, request):
        serializer = JobBatchSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        items = serializer.validated_data["jobs"]
        results: list[dict | None] = [None] * len(items)
        accepted: list[tuple[int, services.JobSubmission]] = []
        for index, body in enumerate(items):
            try:
                if not isinstance(body, dict):
                    raise ValidationError({"non_field_errors": ["Each job must be an object."]})
                accepted.append((index, self.submission(body)))
            except ValidationError as exc:
                results[index] = {"index": index, "status": 400, "errors": exc.detail}
            except ApiError as exc:
                results[index] = {"index": index, "status": exc.status_code, "errors": exc.details}
        outcomes = services.job_submit_many(
            submissions=[submission for _, submission in accepted], context=self.submit_context()
        )
        submitted: list[tuple[int, object]] = []
        for (index, _), outcome in zip(accepted, outcomes, strict=True):
            if isinstance(outcome, services.JobSubmitError):
                results[index] = {"index": index, "status": 400, "errors": outcome.errors}
            elif isinstance(outcome, services.IdempotencyKeyReused):
                results[index] = {"index": index, "status": 422, "errors": IdempotencyKeyReusedError(outcome).details}
            else:
                submitted.append((index, outcome))
        for index, job in submitted:
            results[index] = {"index": index, "status": 200 if job.duplicate else 201, "job": self._submitted(job)}
        return Response({"results": results})

    # -- following ----------------------------------------------------------------

    @extend_schema(
        summary="The job's result",
        tags=["jobs", PRODUCTION_JOB_SYSTEM_TAG],
        description=(
            "Always `{job_id, result, metadata, size_bytes, processing_time_ms, created_at, expires_at}`. "
            "A result stored as a file (over RESULT_INLINE_MAX_BYTES) is streamed inside the same envelope; "
            "`X-Result-Checksum: sha256=...` is the checksum of the result's JSON."
        ),
        responses={
            200: JobResultSerializer,
            404: OpenApiResponse(description="`result_not_ready`, `job_failed`, `job_cancelled` or `not_found`."),
        },
    )
    @action(detail=True, methods=["get"], url_path="result", url_name="result")
    def result(self, request, pk=None):
        job = self.get_object()
        if job.status == JobStatus.FAILED:
            raise ApiError(
                status_code=404,
                code="job_failed",
                message="The job failed; it has no result.",
                details={"status": job.status, "error_message": job.error_message},
            )
        if job.status == JobStatus.CANCELLED:
            raise ApiError(
                status_code=404, code="job_cancelled", message="The job was cancelled.", details={"status": job.status}
            )
        if job.status != JobStatus.COMPLETED:
            raise ApiError(
                status_code=404,
                code="result_not_ready",
                message="The job has not finished yet.",
                details={"status": job.status},
            )
        result = getattr(job, "result", None)
        if result is None:
            raise ApiError(status_code=404, code="not_found", message="The job's result has been deleted.")
        if result.is_file:
            return _streamed_result(result)
        return Response(JobResultSerializer(result).data)

    @extend_schema(
        summary="Counts, success rate and processing times over a window; queue depths",
        parameters=[
            OpenApiParameter("window", OpenApiTypes.STR, enum=list(WINDOWS), description="Default `24h`."),
        ],
        responses={200: OpenApiTypes.OBJECT, 400: ERROR_RESPONSE},
    )
    @action(detail=False, methods=["get"])
    def stats(self, request):
        window = request.query_params.get("window", "24h")
        if window not in WINDOWS:
            raise ValidationError(
                {
                    "window": [f"Invalid value {window!r}. Valid values: {', '.join(WINDOWS)}."],
                    "valid_values": list(WINDOWS),
                }
            )
        data = job_stats(jobs=selectors.job_list(user=request.user), window=window)
        data["queues"] = None
        if selectors.can_see_all_jobs(request.user):
            try:
                data["queues"] = broker_queue_depths()
            except BrokerConnectionError:
                logger.warning("Broker unreachable while computing queue depths", exc_info=True)
        return Response(data)

    @extend_schema(**JOB_DELIVERIES_SCHEMA)
    @action(detail=True, methods=["get"])
    def deliveries(self, request, pk=None):
        return job_deliveries_response(self, self.get_object())

    # -- managing -------------------------------------------------------------------

    @extend_schema(
        summary="Cancel a job",
        request=None,
        responses={200: JobDetailSerializer, 404: ERROR_RESPONSE, 409: ERROR_RESPONSE},
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        job = self.get_object()
        try:
            services.job_cancel(job_id=job.pk)
        except services.JobStateError as exc:
            raise JobStateConflict(exc) from exc
        return Response(JobDetailSerializer(self.get_object(), context={"request": request}).data)

    @extend_schema(
        summary="Cancel a job (same as POST .../cancel/)",
        responses={200: JobDetailSerializer, 404: ERROR_RESPONSE, 409: ERROR_RESPONSE},
    )
    def destroy(self, request, pk=None):
        return self.cancel(request, pk=pk)

    @extend_schema(
        summary="Send a failed or cancelled job back to the queue",
        request=JobRetrySerializer,
        responses={200: JobDetailSerializer, 404: ERROR_RESPONSE, 409: ERROR_RESPONSE},
    )
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        job = self.get_object()
        serializer = JobRetrySerializer(data=request.data or {})
        serializer.is_valid(raise_exception=True)
        try:
            services.job_retry(job_id=job.pk, from_start=serializer.validated_data["from_start"])
        except services.JobStateError as exc:
            raise JobStateConflict(exc) from exc
        return Response(JobDetailSerializer(self.get_object(), context={"request": request}).data)
