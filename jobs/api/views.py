"""The jobs endpoints: submit, validate, batch, list, detail, result, cancel, retry, stats."""

import logging

from django.http import FileResponse
from dramatiq.errors import BrokerConnectionError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from jobsite.api.authentication import is_service
from jobsite.api.errors import ApiError
from jobsite.api.views import GenericViewSet
from jobsite.broker.depth import broker_queue_depths

from .. import selectors, services
from ..filters import JobFilter
from ..models import Job, JobStatus
from ..stats import WINDOWS, job_stats
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


class JobStateConflict(ApiError):
    def __init__(self, exc: services.JobStateError):
        super().__init__(
            status_code=status.HTTP_409_CONFLICT,
            code="invalid_state",
            message=str(exc),
            details={"status": exc.job.status},
        )


@extend_schema_view(
    list=extend_schema(summary="List jobs, newest first", responses={200: JobSummarySerializer(many=True)}),
    retrieve=extend_schema(summary="One job with its stages and progress", responses={200: JobDetailSerializer}),
)
class JobViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, GenericViewSet):
    """Submit jobs, list and follow them, fetch their results, cancel and retry them."""

    serializer_class = JobSummarySerializer
    filterset_class = JobFilter
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
    }

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

    def _submission(self, body, *, header_key: str | None = None) -> services.JobSubmission:
        """Validate one submission body for the caller; raise ValidationError or a 403."""
        serializer = JobSubmitSerializer(data=body)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        if header_key is not None:
            if data.get("idempotency_key") not in (None, header_key):
                raise ValidationError({"idempotency_key": ["Differs from the Idempotency-Key header."]})
            data["idempotency_key"] = header_key
        user = self.request.user
        if not is_service(user):
            if data.get("user_id") not in (None, user.pk):
                raise ApiError(
                    status_code=status.HTTP_403_FORBIDDEN,
                    code="permission_denied",
                    message="Only the service principal may submit a job for another user.",
                    details={"user_id": ["Must be your own id or omitted."]},
                )
            data["user_id"] = user.pk
        return services.JobSubmission(**data)

    def _created_by(self):
        return None if is_service(self.request.user) else self.request.user

    def _submitted(self, job) -> dict:
        duplicate = job.duplicate
        job = selectors.job_detail(user=self.request.user).get(pk=job.pk)
        job.duplicate = duplicate
        return JobSubmittedSerializer(job, context={"request": self.request}).data

    @extend_schema(
        summary="Submit a job",
        request=JobSubmitSerializer,
        parameters=[IDEMPOTENCY_HEADER],
        examples=[SUBMIT_EXAMPLE],
        responses={
            201: JobSubmittedSerializer,
            200: OpenApiResponse(JobSubmittedSerializer, description="A duplicate: the earlier job."),
            400: ERROR_RESPONSE,
            403: ERROR_RESPONSE,
        },
    )
    def create(self, request):
        submission = self._submission(request.data, header_key=request.headers.get("Idempotency-Key"))
        try:
            job = services.job_submit(submission=submission, created_by=self._created_by())
        except services.JobSubmitError as exc:
            raise ValidationError(exc.errors) from exc
        return Response(self._submitted(job), status=status.HTTP_200_OK if job.duplicate else status.HTTP_201_CREATED)

    @extend_schema(
        summary="Check a submission without creating anything",
        request=JobSubmitSerializer,
        examples=[SUBMIT_EXAMPLE],
        responses={200: JobValidSerializer, 400: ERROR_RESPONSE},
    )
    @action(detail=False, methods=["post"])
    def validate(self, request):
        submission = self._submission(request.data)
        try:
            services.job_validate(submission=submission)
        except services.JobSubmitError as exc:
            raise ValidationError(exc.errors) from exc
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
        results = []
        for index, body in enumerate(serializer.validated_data["jobs"]):
            try:
                if not isinstance(body, dict):
                    raise ValidationError({"non_field_errors": ["Each job must be an object."]})
                job = services.job_submit(submission=self._submission(body), created_by=self._created_by())
            except services.JobSubmitError as exc:
                results.append({"index": index, "status": 400, "errors": exc.errors})
            except ValidationError as exc:
                results.append({"index": index, "status": 400, "errors": exc.detail})
            except ApiError as exc:
                results.append({"index": index, "status": exc.status_code, "errors": exc.details})
            else:
                results.append({"index": index, "status": 200 if job.duplicate else 201, "job": self._submitted(job)})
        return Response({"results": results})

    # -- following ----------------------------------------------------------------

    @extend_schema(
        summary="The job's result",
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
            response = FileResponse(result.result_file.open("rb"), content_type=result.content_type)
            response["X-Result-Checksum"] = f"sha256={result.checksum}"
            return response
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
