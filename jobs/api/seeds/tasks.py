"""The task API's contract (seed 003): `/tasks`, also served under `/api/v1/tasks/`.

A task is a job: its `task_name` is an active pipeline, its payload the job's
input (validated by the pipeline's input schema), its id the job's UUID (the
task API's ids were integers; a non-UUID id is a 422, as a non-integer was).

| method and path | served by |
| --- | --- |
| `POST /tasks/{task_name}` | :meth:`TaskViewSet.create`: submit, or the existing task for a duplicate |
| `POST /tasks/{task_name}/batch` | :meth:`TaskViewSet.batch`: a list of payloads |
| `GET /tasks` | :meth:`TaskViewSet.list`: `task_name`, `status`, `page`, `page_size` |
| `GET /tasks/stats` | :meth:`TaskViewSet.stats` (routed before `/tasks/{task_id}`) |
| `GET /tasks/{task_id}` | :meth:`TaskViewSet.retrieve` |
| `DELETE /tasks/{task_id}` | :meth:`TaskViewSet.destroy`: cancel |
| `PATCH /tasks/{task_id}/retry` | :meth:`TaskViewSet.retry` |

Statuses: :data:`TASK_STATUSES` is the one table between the task API's three
and jobsite's nine. De-duplication: a task's content key is the SHA-256 of its
name and canonical JSON payload; it is submitted as the job's idempotency key
(`task:<key>`), whose unique per-owner constraint makes a resubmission return
the existing task (no new row) while it exists, and raises that task's
`max_retries` by one. An `Idempotency-Key` header takes the content key's
place. Errors are FastAPI's: invalid input is a 422 whose `detail` lists
`{loc, msg, type}`.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

import django_filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.settings import api_settings

from jobsite.api.pagination import PageNumberPagination
from jobsite.api.views import GenericViewSet
from pipelines.selectors import active_pipeline_names

from ... import selectors, services
from ...models import Job, JobStatus
from ...stats import WINDOWS, job_stats
from ..errors import IdempotencyKeyReusedError, JobStateConflict
from ..serializers import BlankAsNullField, JobRetrySerializer, inline_result
from ..submitting import JobSubmitting
from .fastapi import FastApiErrors, InvalidInput, enum_error

TASK_TAG = "Task API (seed 003)"

# The task API's statuses and the jobsite statuses each one stands for: the one table.
# The task API had no status for a running task: a task is `not_started` until it has an outcome.
TASK_STATUSES: dict[str, tuple[str, ...]] = {
    "not_started": (
        JobStatus.PENDING,
        JobStatus.SCHEDULED,
        JobStatus.QUEUED,
        JobStatus.PROCESSING,
        JobStatus.RETRYING,
        JobStatus.CANCELLING,
    ),
    "success": (JobStatus.COMPLETED,),
    "error": (JobStatus.FAILED, JobStatus.CANCELLED),
}
TASK_STATUS_OF_JOB = {job_status: name for name, statuses in TASK_STATUSES.items() for job_status in statuses}

IDEMPOTENCY_PREFIX = "task:"
BATCH_MAX = 500


def task_content_key(task_name: str, payload: Any) -> str:
    """SHA-256 of the task's name and its canonical JSON payload (sorted keys, no spaces, ASCII)."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"{task_name}\n{canonical}".encode()).hexdigest()


class TaskErrors(FastApiErrors):
    # The body is the payload: the payload's errors are located at the body's root.
    field_locations = {"input_data": []}


TASK_ERRORS = TaskErrors()


# -- shapes --------------------------------------------------------------------------------


class TaskSummarySerializer(serializers.ModelSerializer):
    """A task as listed: the task API's `DatabaseTask` fields but the result, and jobsite's extras."""

    id = serializers.UUIDField(read_only=True, help_text="The task's id: a UUID (the job's id).")
    task_name = serializers.CharField(source="pipeline.name", read_only=True)
    task_payload = serializers.JSONField(source="input_data", read_only=True)
    task_payload_prefix = serializers.SerializerMethodField(
        help_text="The content key duplicates are found by: SHA-256 of the task name and its canonical payload."
    )
    status = serializers.SerializerMethodField(help_text="`not_started`, `success` or `error`.")
    job_status = serializers.CharField(source="status", read_only=True, help_text="jobsite's own status.")
    max_retries = serializers.SerializerMethodField(
        help_text="Retries allowed after the first attempt (`max_attempts` - 1); +1 for each duplicate submission."
    )
    error_message = BlankAsNullField()

    class Meta:
        model = Job
        fields = [
            "id",
            "task_name",
            "task_payload",
            "task_payload_prefix",
            "status",
            "max_retries",
            "job_status",
            "attempts",
            "max_attempts",
            "progress",
            "error_message",
            "created_at",
            "updated_at",
            "started_at",
            "completed_at",
            "duration_ms",
        ]

    def get_task_payload_prefix(self, job) -> str:
        return task_content_key(job.pipeline.name, job.input_data)

    def get_status(self, job) -> str:
        return TASK_STATUS_OF_JOB[job.status]

    def get_max_retries(self, job) -> int:
        return max(job.max_attempts - 1, 0)


class TaskSerializer(TaskSummarySerializer):
    """The task API's `DatabaseTask`, in full."""

    result_data = serializers.SerializerMethodField(
        help_text="The result of a successful task (null otherwise; a result stored as a file is at "
        "`GET /api/v1/jobs/{id}/result/`)."
    )

    class Meta(TaskSummarySerializer.Meta):
        fields = [*TaskSummarySerializer.Meta.fields, "result_data"]

    def get_result_data(self, job) -> Any:
        return inline_result(job)


class CreateTaskResponseSerializer(serializers.Serializer):
    task = TaskSerializer()
    duplicate = serializers.BooleanField(help_text="True when an identical task existed and is returned.")
    message = serializers.CharField()


class TaskBatchItemSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    success = serializers.BooleanField()
    id = serializers.UUIDField(allow_null=True)
    status = serializers.CharField(allow_null=True, help_text="The task's status; null when refused.")
    duplicate = serializers.BooleanField()
    errors = serializers.ListField(child=serializers.DictField(), allow_null=True, help_text="`[{loc, msg, type}]`.")


class TaskBatchResponseSerializer(serializers.Serializer):
    results = TaskBatchItemSerializer(many=True)
    created = serializers.IntegerField()
    duplicates = serializers.IntegerField()
    failed = serializers.IntegerField()


class TaskFilter(django_filters.FilterSet):
    task_name = django_filters.CharFilter(field_name="pipeline__name", help_text="Exact task name.")
    status = django_filters.CharFilter(method="filter_status", help_text="`not_started`, `success` or `error`.")

    def filter_status(self, queryset, name, value):
        if value not in TASK_STATUSES:
            raise enum_error("status", value, list(TASK_STATUSES), location="query")
        return queryset.filter(status__in=TASK_STATUSES[value])


class TaskPagination(PageNumberPagination):
    items_key = "tasks"


def _counts(job_counts: dict[str, int]) -> dict[str, int]:
    counts = dict.fromkeys(TASK_STATUSES, 0)
    for job_status, n in job_counts.items():
        counts[TASK_STATUS_OF_JOB[job_status]] += n
    return counts


def _success_rate(counts: dict[str, int]) -> float | None:
    finished = counts["success"] + counts["error"]
    return round(counts["success"] / finished, 4) if finished else None


def task_stats(stats: dict) -> dict:
    """jobsite's job statistics in the task API's words: counts by task status, success rate, times."""
    counts = _counts(stats["counts"])
    return {
        "window": stats["window"],
        "since": stats["since"],
        "until": stats["until"],
        "total": stats["total"],
        "counts": counts,
        "success_rate": _success_rate(counts),
        "avg_processing_time_ms": stats["processing_time_ms"]["avg"],
        "p95_processing_time_ms": stats["processing_time_ms"]["p95"],
        "tasks": [
            {
                "task_name": entry["pipeline"],
                "total": entry["total"],
                "counts": _counts(entry["counts"]),
                "success_rate": _success_rate(_counts(entry["counts"])),
                "avg_processing_time_ms": entry["processing_time_ms"]["avg"],
            }
            for entry in stats["pipelines"]
        ],
    }


# -- the endpoints ---------------------------------------------------------------------------

TASK_ID = OpenApiParameter("task", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The task's id (a UUID).")
TASK_NAME = OpenApiParameter(
    "task", OpenApiTypes.STR, OpenApiParameter.PATH, description="The task's name: an active pipeline."
)
TASK_ERROR = OpenApiResponse(description="jobsite's envelope plus FastAPI's `detail` (a 422 lists `{loc, msg, type}`).")
WINDOW = OpenApiParameter("window", OpenApiTypes.STR, enum=[*WINDOWS], description="Default `24h`.")
PAYLOAD_EXAMPLE = OpenApiExample("A payload", value={"text": "Hello jobsite."}, request_only=True)


class TaskViewSet(JobSubmitting, GenericViewSet):
    """The task API: submit tasks, list and follow them, cancel and retry them, their statistics."""

    error_contract = TASK_ERRORS
    serializer_class = TaskSummarySerializer
    filterset_class = TaskFilter
    pagination_class = TaskPagination
    lookup_url_kwarg = "task"
    query_params_checked_actions = ("list", "stats")
    operation_permissions = {
        "list": "jobs.view_job",
        "retrieve": "jobs.view_job",
        "stats": "jobs.view_job",
        "create": "jobs.add_job",
        "batch": "jobs.add_job",
        "destroy": "jobs.cancel_job",
        "retry": "jobs.retry_job",
    }

    def accepted_query_params(self) -> set[str]:
        if self.action == "stats":
            return {api_settings.URL_FORMAT_OVERRIDE, "window"}
        return super().accepted_query_params()

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Job.objects.none()
        if self.action == "list":
            return selectors.job_list(user=self.request.user)
        return selectors.job_detail(user=self.request.user)

    def get_object(self):
        """The caller's task by id: a 422 for an id that is not a UUID, a 404 for one not found."""
        try:
            pk = uuid.UUID(self.kwargs["task"])
        except ValueError:
            raise InvalidInput(
                {"task_id": [serializers.ErrorDetail("Input should be a valid UUID.", code="uuid_parsing")]},
                location="path",
            ) from None
        job = self.get_queryset().filter(pk=pk).first()
        if job is None:
            raise exceptions.NotFound("Task not found.")
        return job

    def represent(self, job) -> dict:
        return TaskSerializer(job, context={"request": self.request}).data

    # -- submitting ------------------------------------------------------------------------

    def unknown_task(self, task_name: str) -> InvalidInput:
        return enum_error("task_name", task_name, active_pipeline_names(), location="path")

    def submit_errors(self, exc: services.JobSubmitError) -> exceptions.ValidationError:
        if "pipeline" in exc.errors:
            return self.unknown_task(self.kwargs["task"])
        return super().submit_errors(exc)

    def task_submission(self, task_name: str, payload: Any, *, idempotency_key: str | None = None):
        """The submission of one task: its payload is the job's input, its content key the idempotency key."""
        if not isinstance(payload, dict):
            raise exceptions.ValidationError(
                {"input_data": [serializers.ErrorDetail("Input should be a valid dictionary.", code="dict_type")]}
            )
        key = idempotency_key or IDEMPOTENCY_PREFIX + task_content_key(task_name, payload)
        try:
            return self.submission({"pipeline": task_name, "input_data": payload, "idempotency_key": key})
        except exceptions.ValidationError as exc:
            if isinstance(exc.detail, dict) and "pipeline" in exc.detail:
                raise self.unknown_task(task_name) from exc
            raise

    def granted(self, job: Job) -> Job:
        """A duplicate: the task API raised the existing task's `max_retries` by one."""
        max_attempts = services.job_grant_attempt(job_id=job.pk)
        if max_attempts is not None:
            job.max_attempts = max_attempts
        return job

    @extend_schema(
        tags=[TASK_TAG],
        operation_id="tasks_create",
        summary="Submit a task (CreateTaskRequest: the payload)",
        description="The body is the task's payload, validated by the pipeline's input schema. A new task is a "
        "201; the same task name and payload again (while that task exists) is a 200 with the existing task, "
        "`duplicate: true`, and its `max_retries` raised by one. An unknown task name is a 422 listing the valid "
        "ones.",
        parameters=[TASK_NAME],
        request=OpenApiTypes.OBJECT,
        examples=[PAYLOAD_EXAMPLE],
        responses={201: CreateTaskResponseSerializer, 200: CreateTaskResponseSerializer, 422: TASK_ERROR},
    )
    def create(self, request, task: str):
        submission = self.task_submission(task, request.data, idempotency_key=self.idempotency_header())
        job = self.submit(submission)
        if job.duplicate:
            job = self.granted(job)
        message = "Duplicate task: an identical task exists." if job.duplicate else "Task created."
        return Response(
            {"task": self.represent(job), "duplicate": job.duplicate, "message": message},
            status=status.HTTP_200_OK if job.duplicate else status.HTTP_201_CREATED,
        )

    @extend_schema(
        tags=[TASK_TAG],
        operation_id="tasks_batch",
        summary="Submit many tasks of one name",
        description=f"The body is a list of payloads (1..{BATCH_MAX}). Each is validated on its own; the valid "
        "ones are created in one transaction. 200 with one result per payload: `success`, the task's `id` and "
        "`status`, `duplicate`, or its `errors`.",
        parameters=[TASK_NAME],
        request={"application/json": {"type": "array", "items": {"type": "object"}}},
        responses={200: TaskBatchResponseSerializer, 422: TASK_ERROR},
    )
    def batch(self, request, task: str):
        payloads = request.data
        if not isinstance(payloads, list) or not 1 <= len(payloads) <= BATCH_MAX:
            raise exceptions.ValidationError(
                [
                    serializers.ErrorDetail(
                        f"Input should be a list of 1 to {BATCH_MAX} payloads.",
                        code="list_type" if not isinstance(payloads, list) else "too_short",
                    )
                ]
            )
        if task not in active_pipeline_names():
            raise self.unknown_task(task)
        results: list[dict | None] = [None] * len(payloads)
        accepted: list[tuple[int, services.JobSubmission]] = []
        for index, payload in enumerate(payloads):
            try:
                accepted.append((index, self.task_submission(task, payload)))
            except exceptions.ValidationError as exc:
                results[index] = self._refused(index, exc.detail)
        outcomes = services.job_submit_many(
            submissions=[submission for _, submission in accepted], context=self.submit_context()
        )
        for (index, _), outcome in zip(accepted, outcomes, strict=True):
            if isinstance(outcome, services.JobSubmitError):
                results[index] = self._refused(index, self.submit_errors(outcome).detail)
            elif isinstance(outcome, services.IdempotencyKeyReused):
                error = IdempotencyKeyReusedError(outcome)
                results[index] = self._refused(index, {"idempotency_key": [error.message]})
            else:
                job = self.granted(outcome) if outcome.duplicate else outcome
                results[index] = {
                    "index": index,
                    "success": True,
                    "id": str(job.pk),
                    "status": TASK_STATUS_OF_JOB[job.status],
                    "duplicate": job.duplicate,
                    "errors": None,
                }
        done = [item for item in results if item["success"]]
        return Response(
            {
                "results": results,
                "created": sum(not item["duplicate"] for item in done),
                "duplicates": sum(item["duplicate"] for item in done),
                "failed": len(results) - len(done),
            }
        )

    def _refused(self, index: int, detail) -> dict:
        return {
            "index": index,
            "success": False,
            "id": None,
            "status": None,
            "duplicate": False,
            "errors": TASK_ERRORS.items(detail, ["body", index]),
        }

    # -- following ---------------------------------------------------------------------------

    @extend_schema(
        tags=[TASK_TAG],
        operation_id="tasks_list",
        summary="List tasks, newest first (TaskListResponse)",
        description="`{tasks, total, page, page_size, pages, total_estimated}`. `page` from 1, `page_size` "
        "1..100 (default 50): anything else is a 422, as an unknown `status`; an unknown parameter is a 400.",
        responses={200: TaskSummarySerializer(many=True), 400: TASK_ERROR, 422: TASK_ERROR},
    )
    def list(self, request):
        queryset = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    @extend_schema(
        tags=[TASK_TAG],
        operation_id="tasks_retrieve",
        summary="One task (DatabaseTask)",
        parameters=[TASK_ID],
        responses={200: TaskSerializer, 404: TASK_ERROR, 422: TASK_ERROR},
    )
    def retrieve(self, request, task: str):
        return Response(self.represent(self.get_object()))

    @extend_schema(
        tags=[TASK_TAG],
        operation_id="tasks_stats",
        summary="Task statistics: counts by status, success rate, processing times",
        description="Over `window` (`1h`, `24h` (default), `7d`, `30d`) of creation time; per task name too. "
        "`success_rate` = success / (success + error).",
        parameters=[WINDOW],
        responses={200: OpenApiTypes.OBJECT, 400: TASK_ERROR, 422: TASK_ERROR},
    )
    def stats(self, request):
        window = request.query_params.get("window", "24h")
        if window not in WINDOWS:
            raise enum_error("window", window, [*WINDOWS], location="query")
        return Response(task_stats(job_stats(jobs=selectors.job_list(user=request.user), window=window)))

    # -- managing -----------------------------------------------------------------------------

    @extend_schema(
        tags=[TASK_TAG],
        operation_id="tasks_cancel",
        summary="Cancel a task",
        description="A waiting task is cancelled at once (`error`), a running one at its next check. A finished "
        "task is a 409.",
        parameters=[TASK_ID],
        responses={200: TaskSerializer, 404: TASK_ERROR, 409: TASK_ERROR, 422: TASK_ERROR},
    )
    def destroy(self, request, task: str):
        job = self.get_object()
        try:
            services.job_cancel(job_id=job.pk)
        except services.JobStateError as exc:
            raise JobStateConflict(exc) from exc
        return Response(self.represent(self.get_object()))

    @extend_schema(
        tags=[TASK_TAG],
        operation_id="tasks_retry",
        summary="Retry a failed or cancelled task",
        description="The task goes back to the queue (`not_started`), resuming at its failed stage "
        '(`{"from_start": true}` reruns all). Any other state is a 409.',
        parameters=[TASK_ID],
        request=JobRetrySerializer,
        responses={200: TaskSerializer, 404: TASK_ERROR, 409: TASK_ERROR, 422: TASK_ERROR},
    )
    def retry(self, request, task: str):
        job = self.get_object()
        serializer = JobRetrySerializer(data=request.data or {})
        serializer.is_valid(raise_exception=True)
        try:
            services.job_retry(job_id=job.pk, from_start=serializer.validated_data["from_start"])
        except services.JobStateError as exc:
            raise JobStateConflict(exc) from exc
        return Response(self.represent(self.get_object()))
