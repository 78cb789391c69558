"""The LLM workflow service's contract (seeds 000 and 001), and its dashboard's LLM Queue tab.

| the service's path | served by |
| --- | --- |
| `GET /api/v1/jobs` | jobsite's own list (`jobs.api.views.JobViewSet.list`), which speaks this contract |
| `GET /api/v1/status/{job_id}` | :class:`LlmWorkflowViewSet.retrieve`: the job's full status |
| `POST /api/v1/workflow` | :class:`LlmWorkflowViewSet.create`: submit |
| `POST /api/v1/workflow/validate` | :class:`LlmWorkflowViewSet.validate`: check, nothing written |

The shared secret comes in `X-API-Secret` (settings: `LLM_WEBHOOK_SECRET`
stands for `JOBSITE_API_SECRET` when that is unset) and is the service
principal, which sees every job; jobsite's other credentials work too. Errors
carry the service's `detail` besides jobsite's envelope: a wrong or missing
secret is a 401 whose `detail` is `{"error": "InvalidAPISecret", "message"}`;
an invalid body a 422 listing `{loc, msg, type}`; the list's own errors are
described by :meth:`LlmWorkflowErrors.validation`.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response

from jobsite.api.views import ViewSet

from ... import selectors
from ...filters import LIMIT_RESULTS_MAX, LIMIT_RESULTS_VALID_VALUES
from ..serializers import (
    JobDetailSerializer,
    JobSubmitSerializer,
    JobSubmittedSerializer,
    JobValidSerializer,
    inline_result,
)
from ..submitting import JobSubmitting
from .fastapi import FACT_KEYS, FastApiErrors, InvalidInput, first_message

LLM_WORKFLOW_TAG = "LLM workflow service (seeds 000/001)"
INVALID_API_SECRET = "InvalidAPISecret"  # noqa: S105 (an error code)
INVALID_LIMIT_RESULTS = "InvalidLimitResults"
# Credentials other than the shared secret: a failure with one of them is reported as jobsite reports it.
OTHER_CREDENTIAL_HEADERS = ("Authorization", "X-API-Key")


class LlmWorkflowErrors(FastApiErrors):
    """The service's error bodies: FastAPI's `detail`, with its own codes where it had them."""

    def render(self, exc, response: Response, view) -> Response:
        response = super().render(exc, response, view)
        if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed) and not any(
            name in view.request.headers for name in OTHER_CREDENTIAL_HEADERS
        ):
            supplied = "X-API-Secret" in view.request.headers
            message = "Invalid API secret." if supplied else "Missing API secret: send the X-API-Secret header."
            response.data["detail"] = {"error": INVALID_API_SECRET, "message": message}
        return response

    def validation(self, exc: exceptions.ValidationError, view) -> tuple[int, Any]:
        """The list's errors as the service answered them; a body's as FastAPI did (422).

        On the list: a bad `limit_results` is a 400 with `InvalidLimitResults`;
        `limit` or `offset` out of bounds a 422 (the service's framework
        checked them); anything else, `status` included, a 400 whose
        `detail` is a string naming the parameter.
        """
        if getattr(view, "action", None) != "list" or not isinstance(exc.detail, dict):
            return super().validation(exc, view)
        fields = set(exc.detail) - FACT_KEYS
        if "limit_results" in fields:
            return status.HTTP_400_BAD_REQUEST, invalid_limit_results(view.request.query_params["limit_results"])
        if fields and fields <= {"limit", "offset"}:
            return status.HTTP_422_UNPROCESSABLE_ENTITY, self.validation_list(exc, view)
        field, message = first_message(exc)
        return status.HTTP_400_BAD_REQUEST, f"Invalid {field}: {message}"


def invalid_limit_results(value: str) -> dict:
    """The service's `InvalidLimitResults` detail: `valid_values` only when `value` is not an integer."""
    if not re.fullmatch(r"-?[0-9]+", value):
        return {
            "error": INVALID_LIMIT_RESULTS,
            "message": f"Invalid limit_results {value!r}: use a number from 1 to {LIMIT_RESULTS_MAX}, "
            "'Today', '7 Days' or '30 Days'.",
            "limit_results": value,
            "valid_values": LIMIT_RESULTS_VALID_VALUES,
        }
    return {
        "error": INVALID_LIMIT_RESULTS,
        "message": f"limit_results must be from 1 to {LIMIT_RESULTS_MAX}; got {value}.",
        "limit_results": value,
    }


LLM_WORKFLOW_ERRORS = LlmWorkflowErrors()


class WorkflowSubmitSerializer(JobSubmitSerializer):
    """The service's `WorkflowSubmitRequest`: `workflow_name`, `input_data`, `user_id`, `webhook_url`,
    `webhook_secret`, `priority`, `debug_mode`, `username`, `action`; jobsite's other submission fields too."""

    pipeline_required_field = "workflow_name"


class WorkflowStatusSerializer(JobDetailSerializer):
    """The service's `WorkflowStatusResponse`: the job in full, and its result when it has one."""

    result_data = serializers.SerializerMethodField(
        help_text="The result of a completed job (null otherwise, and for a result stored as a file: "
        "fetch `result_url`)."
    )

    class Meta(JobDetailSerializer.Meta):
        fields = [*JobDetailSerializer.Meta.fields, "result_data"]

    @staticmethod
    def get_result_data(job) -> Any:
        return inline_result(job)


WORKFLOW_EXAMPLE = OpenApiExample(
    "Submit a workflow",
    value={
        "workflow_name": "text-analysis",
        "input_data": {"text": "Hello jobsite."},
        "user_id": None,
        "webhook_url": "https://example.com/hooks/llm",
        "webhook_secret": None,
        "priority": 0,
        "debug_mode": False,
        "username": "alice",
        "action": "analyse",
    },
    request_only=True,
)
LLM_ERROR = OpenApiResponse(
    description="jobsite's envelope plus the service's `detail` (a 422 lists `{loc, msg, type}`; a 401 is "
    "`{error: InvalidAPISecret, message}`)."
)


class LlmWorkflowViewSet(JobSubmitting, ViewSet):
    """The LLM workflow service's status, submit and validate endpoints."""

    basename = "job"  # audited as jobsite's own job operations: jobs.job.retrieve, jobs.job.create...
    error_contract = LLM_WORKFLOW_ERRORS
    submit_serializer_class = WorkflowSubmitSerializer
    submit_error_fields = {"pipeline": "workflow_name"}
    operation_permissions = {"retrieve": "jobs.view_job", "create": "jobs.add_job", "validate": "jobs.add_job"}

    @extend_schema(
        tags=[LLM_WORKFLOW_TAG],
        operation_id="llm_workflow_status",
        summary="A job's full status (WorkflowStatusResponse)",
        description="The job as `GET /api/v1/jobs/{id}/` shows it, and `result_data` once it has completed. "
        "An id that is not a UUID is a 422; an unknown one a 404.",
        parameters=[OpenApiParameter("job_id", OpenApiTypes.UUID, OpenApiParameter.PATH)],
        responses={200: WorkflowStatusSerializer, 401: LLM_ERROR, 404: LLM_ERROR, 422: LLM_ERROR},
    )
    def retrieve(self, request, job_id: str):
        try:
            pk = uuid.UUID(job_id)
        except ValueError:
            raise InvalidInput(
                {"job_id": [serializers.ErrorDetail("Input should be a valid UUID.", code="uuid_parsing")]},
                location="path",
            ) from None
        job = selectors.job_detail(user=request.user).filter(pk=pk).first()
        if job is None:
            raise exceptions.NotFound("Job not found.")
        return Response(WorkflowStatusSerializer(job, context={"request": request}).data)

    @extend_schema(
        tags=[LLM_WORKFLOW_TAG],
        operation_id="llm_workflow_submit",
        summary="Submit a workflow (WorkflowSubmitRequest)",
        description="Creates a job of the active pipeline named `workflow_name` and answers with it (201), or "
        "with the earlier job and `duplicate: true` (200) for a repeated `idempotency_key`. The job is `queued` "
        "with `queued_at` set once the broker has it (`pending` until then). Invalid input is a 422.",
        request=WorkflowSubmitSerializer,
        examples=[WORKFLOW_EXAMPLE],
        responses={201: JobSubmittedSerializer, 200: JobSubmittedSerializer, 401: LLM_ERROR, 422: LLM_ERROR},
    )
    def create(self, request):
        job = self.submit(self.submission(request.data, header_key=self.idempotency_header()))
        context = {"request": request, "new_job": not job.duplicate}
        return Response(
            JobSubmittedSerializer(job, context=context).data,
            status=status.HTTP_200_OK if job.duplicate else status.HTTP_201_CREATED,
        )

    @extend_schema(
        tags=[LLM_WORKFLOW_TAG],
        operation_id="llm_workflow_validate",
        summary="Check a workflow submission without creating anything",
        description='The body of `POST /api/v1/workflow`; 200 `{"valid": true}`, or a 422 listing what is wrong.',
        request=WorkflowSubmitSerializer,
        examples=[WORKFLOW_EXAMPLE],
        responses={200: JobValidSerializer, 401: LLM_ERROR, 422: LLM_ERROR},
    )
    def validate(self, request):
        self.validate_submission(self.submission(request.data))
        return Response({"valid": True})
