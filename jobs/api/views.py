"""The jobs endpoints: submit, validate, batch, list, detail, result, cancel, retry, stats."""

import json
import logging
import re
import uuid

from django.http import StreamingHttpResponse
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
from jobsite.observability.tracing import current_traceparent

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


# A W3C trace context header: version-traceid-parentid-flags.
TRACEPARENT = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")


class IdempotencyKeyReusedError(ApiError):
    def __init__(self, exc: services.IdempotencyKeyReused):
        super().__init__(
            status_code=status.HTTP_422_UNPROCESSABLE_ENTITY,
            code="idempotency_key_reused",
            message="This idempotency key was used before for a different submission.",
            details={"idempotency_key": exc.job.idempotency_key, "job_id": str(exc.job.pk)},
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

    def _idempotency_header(self) -> str | None:
        """The `Idempotency-Key` header: absent when empty, a 400 when longer than a key may be."""
        value = self.request.headers.get("Idempotency-Key", "").strip()
        if not value:
            return None
        if len(value) > 255:
            raise ValidationError({"Idempotency-Key": ["Ensure this header has no more than 255 characters."]})
        return value

    def _submission(self, body, *, header_key: str | None = None) -> services.JobSubmission:
        """Validate one submission body for the caller; raise ValidationError or a 403."""
        serializer = JobSubmitSerializer(data=body)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        if data.get("idempotency_key") == "":
            data["idempotency_key"] = None
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

    def _submit_context(self) -> services.SubmitContext:
        request = self.request
        traceparent = request.headers.get("traceparent", "")
        return services.SubmitContext(
            created_by=None if is_service(request.user) else request.user,
            request_id=getattr(request._request, "request_id", ""),
            # With tracing on, the job continues this request's span; otherwise the caller's trace as it came.
            traceparent=current_traceparent() or (traceparent if TRACEPARENT.match(traceparent) else ""),
        )

    def _submitted(self, job) -> dict:
        """The answer for a submitted job, from the object in hand (a new job has no stage runs yet)."""
        context = {"request": self.request, "new_job": not job.duplicate}
        return JobSubmittedSerializer(job, context=context).data

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
            422: OpenApiResponse(description="`idempotency_key_reused`: the key came with a different submission."),
        },
    )
    def create(self, request):
        submission = self._submission(request.data, header_key=self._idempotency_header())
        try:
            job = services.job_submit(submission=submission, context=self._submit_context())
        except services.JobSubmitError as exc:
            raise ValidationError(exc.errors) from exc
        except services.IdempotencyKeyReused as exc:
            raise IdempotencyKeyReusedError(exc) from exc
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
        items = serializer.validated_data["jobs"]
        results: list[dict | None] = [None] * len(items)
        accepted: list[tuple[int, services.JobSubmission]] = []
        for index, body in enumerate(items):
            try:
                if not isinstance(body, dict):
                    raise ValidationError({"non_field_errors": ["Each job must be an object."]})
                accepted.append((index, self._submission(body)))
            except ValidationError as exc:
                results[index] = {"index": index, "status": 400, "errors": exc.detail}
            except ApiError as exc:
                results[index] = {"index": index, "status": exc.status_code, "errors": exc.details}
        outcomes = services.job_submit_many(
            submissions=[submission for _, submission in accepted], context=self._submit_context()
        )
        for (index, _), outcome in zip(accepted, outcomes, strict=True):
            if isinstance(outcome, services.JobSubmitError):
                results[index] = {"index": index, "status": 400, "errors": outcome.errors}
            elif isinstance(outcome, services.IdempotencyKeyReused):
                results[index] = {"index": index, "status": 422, "errors": IdempotencyKeyReusedError(outcome).details}
            else:
                code = 200 if outcome.duplicate else 201
                results[index] = {"index": index, "status": code, "job": self._submitted(outcome)}
        return Response({"results": results})

    # -- following ----------------------------------------------------------------

    @extend_schema(
        summary="The job's result",
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
