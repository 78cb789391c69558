"""The jobs endpoints: submit, list, detail, result."""

from django.http import FileResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from jobsite.api.authentication import is_service
from jobsite.api.errors import ApiError
from jobsite.api.views import GenericViewSet

from .. import selectors, services
from ..models import JobStatus
from .serializers import JobDetailSerializer, JobResultSerializer, JobSubmitSerializer, JobSummarySerializer


class JobViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, GenericViewSet):
    """Submit jobs, list and follow them, fetch their results."""

    serializer_class = JobSummarySerializer
    operation_permissions = {
        "list": "jobs.view_job",
        "retrieve": "jobs.view_job",
        "result": "jobs.view_job",
        "create": "jobs.add_job",
    }

    def get_queryset(self):
        if self.action == "list":
            return selectors.job_list(user=self.request.user)
        return selectors.job_detail(user=self.request.user)

    def get_serializer_class(self):
        if self.action == "retrieve":
            return JobDetailSerializer
        if self.action == "create":
            return JobSubmitSerializer
        return JobSummarySerializer

    @extend_schema(request=JobSubmitSerializer, responses={201: JobDetailSerializer})
    def create(self, request):
        serializer = JobSubmitSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        user = request.user
        if is_service(user):
            created_by = None
        else:
            if data.get("user_id") not in (None, user.pk):
                raise ApiError(
                    status_code=status.HTTP_403_FORBIDDEN,
                    code="permission_denied",
                    message="Only the service principal may submit a job for another user.",
                    details={"user_id": ["Must be your own id or omitted."]},
                )
            data["user_id"] = user.pk
            created_by = user
        try:
            job = services.job_submit(submission=services.JobSubmission(**data), created_by=created_by)
        except services.JobSubmitError as exc:
            raise ValidationError(exc.errors) from exc
        job = self.get_queryset().get(pk=job.pk)
        return Response(JobDetailSerializer(job, context={"request": request}).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        responses={
            200: JobResultSerializer,
            404: OpenApiResponse(description="`result_not_ready`, `job_failed`, `job_cancelled` or `not_found`."),
        }
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
