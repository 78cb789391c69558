"""Input and output shapes of the jobs API."""

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from jobsite.api.validation import validate_storable
from pipelines.selectors import active_pipeline_name
from webhooks.services import webhook_url_problems

from ..models import Job, JobResult, StageRun

# Text fields a submission may leave out or send as null; stored as "", shown as null.
OPTIONAL_TEXT_FIELDS = ("username", "action", "webhook_url", "webhook_secret")


class JobSubmitSerializer(serializers.Serializer):
    """Body of `POST /api/v1/jobs/` (and of the LLM workflow service's `POST /api/v1/workflow`).

    The pipeline is named by `pipeline`, `workflow_name` (the LLM workflow
    service's name) or `pipeline_id` (the production job system's numeric id);
    names given together must agree.
    """

    # The field named in the error when no pipeline is given.
    pipeline_required_field = "pipeline"

    pipeline = serializers.CharField(max_length=100, required=False, help_text="Name of an active pipeline.")
    workflow_name = serializers.CharField(
        max_length=100, required=False, write_only=True, help_text="The same as `pipeline`."
    )
    pipeline_id = serializers.IntegerField(
        min_value=1,
        max_value=2**63 - 1,
        required=False,
        write_only=True,
        help_text="The pipeline's numeric id, instead of its name.",
    )
    input_data = serializers.JSONField(help_text="A JSON object, validated against the pipeline's input schema.")
    priority = serializers.IntegerField(min_value=0, max_value=10, default=0)
    user_id = serializers.UUIDField(required=False, allow_null=True)
    username = serializers.CharField(max_length=255, required=False, allow_blank=True, allow_null=True, default="")
    action = serializers.CharField(max_length=255, required=False, allow_blank=True, allow_null=True, default="")
    max_attempts = serializers.IntegerField(min_value=1, max_value=20, required=False, allow_null=True)
    run_at = serializers.DateTimeField(required=False, allow_null=True)
    webhook_url = serializers.URLField(
        max_length=2000,
        required=False,
        allow_blank=True,
        allow_null=True,
        default="",
        help_text="Called when the job finishes.",
    )
    webhook_secret = serializers.CharField(
        max_length=255,
        required=False,
        allow_blank=True,
        allow_null=True,
        default="",
        write_only=True,
        help_text="Signs the calls to `webhook_url`. Never returned.",
    )
    idempotency_key = serializers.CharField(
        max_length=255,
        required=False,
        allow_null=True,
        help_text="Repeat a submission safely: the same owner and key return the first job. "
        "Also accepted as the `Idempotency-Key` header.",
    )
    debug_mode = serializers.BooleanField(
        default=False,
        help_text="Keep every stage's output (the last one included) and show them, with the job's event log, "
        "in the job's `debug`.",
    )

    def validate_input_data(self, value):
        if not isinstance(value, dict):
            raise serializers.ValidationError("Must be a JSON object.")
        validate_storable(value)
        return value

    def validate_webhook_url(self, value):
        """Refuse what deliveries may not reach: credentials (stored and shown; `webhook_secret` signs) or a
        private host written as an address. A host name is resolved and checked at every delivery instead of
        here, so a submission never waits on DNS."""
        if not value:
            return ""
        problems = webhook_url_problems(value, signed_with="webhook_secret", resolve=False)
        if problems:
            raise serializers.ValidationError(problems)
        return value

    def validate(self, attrs):
        names = {field: attrs.pop(field) for field in ("pipeline", "workflow_name") if field in attrs}
        pipeline_id = attrs.pop("pipeline_id", None)
        if pipeline_id is not None:
            name = active_pipeline_name(pipeline_id)
            if name is None:
                raise serializers.ValidationError({"pipeline_id": [f"No active pipeline with id {pipeline_id}."]})
            names["pipeline_id"] = name
        if not names:
            raise serializers.ValidationError(
                {self.pipeline_required_field: [serializers.ErrorDetail("This field is required.", code="required")]}
            )
        if len(set(names.values())) > 1:
            given = ", ".join(sorted(names))
            raise serializers.ValidationError({field: [f"{given} name different pipelines."] for field in names})
        attrs["pipeline"] = next(iter(names.values()))
        for field in OPTIONAL_TEXT_FIELDS:
            if attrs.get(field) is None:
                attrs[field] = ""
        return attrs


class StageRunSerializer(serializers.ModelSerializer):
    attempts = serializers.IntegerField(source="attempt")
    started = serializers.DateTimeField(source="started_at")
    finished = serializers.DateTimeField(source="finished_at")

    class Meta:
        model = StageRun
        fields = ["name", "status", "attempts", "started", "finished", "duration_ms", "error"]


def inline_result(job: Job):
    """The job's result when it is stored inline; None before there is one and for a result kept as a file."""
    result = getattr(job, "result", None)
    return None if result is None or result.is_file else result.result


class BlankAsNullField(serializers.CharField):
    """Text stored as "" when absent, shown as null (the LLM workflow service's nullability)."""

    def __init__(self, **kwargs):
        super().__init__(read_only=True, allow_null=True, **kwargs)

    def to_representation(self, value):
        return str(value) if value else None


# The LLM workflow service's JobSummary, in its order; then what jobsite adds.
SEED_SUMMARY_FIELDS = [
    "job_id",
    "workflow_name",
    "status",
    "priority",
    "user_id",
    "username",
    "action",
    "created_at",
    "started_at",
    "completed_at",
    "duration_ms",
    "error_message",
]
SUMMARY_EXTRA_FIELDS = ["pipeline_version", "progress", "attempts", "max_attempts", "queued_at"]


class JobSummarySerializer(serializers.ModelSerializer):
    """The light shape used in lists: never input data or results.

    Exactly the LLM workflow service's `JobSummary` (`job_id`, `workflow_name`,
    ...; absent text is null, not "") and jobsite's extras.
    """

    job_id = serializers.UUIDField(source="id", read_only=True)
    workflow_name = serializers.CharField(source="pipeline.name", read_only=True, help_text="The pipeline's name.")
    username = BlankAsNullField()
    action = BlankAsNullField()
    error_message = BlankAsNullField()

    class Meta:
        model = Job
        fields = [*SEED_SUMMARY_FIELDS, *SUMMARY_EXTRA_FIELDS]


class DebugStageRunSerializer(serializers.ModelSerializer):
    class Meta:
        model = StageRun
        fields = [
            "index",
            "name",
            "attempt",
            "job_attempt",
            "status",
            "started_at",
            "finished_at",
            "duration_ms",
            "output",
            "error",
        ]


class DebugEventSerializer(serializers.Serializer):
    type = serializers.CharField()
    at = serializers.DateTimeField(source="created_at")
    data = serializers.JSONField()


class JobDebugSerializer(serializers.Serializer):
    """What `debug_mode` keeps: every stage run with its output, and the job's event log."""

    stage_runs = DebugStageRunSerializer(many=True, help_text="Every run of every stage, oldest first.")
    events = DebugEventSerializer(many=True, help_text="Every change of the job's state, oldest first.")


class JobDetailSerializer(JobSummarySerializer):
    """Everything about one job."""

    stages = serializers.SerializerMethodField()
    result_url = serializers.SerializerMethodField()
    webhook_url = BlankAsNullField()
    locked_by = BlankAsNullField()
    debug = serializers.SerializerMethodField(
        help_text="With `debug_mode`: every stage run with its output and the job's event log; else null."
    )

    class Meta(JobSummarySerializer.Meta):
        fields = [
            *JobSummarySerializer.Meta.fields,
            "input_data",
            "debug_mode",
            "stages",
            "result_url",
            "webhook_url",
            "idempotency_key",
            "run_at",
            "locked_by",
            "heartbeat_at",
            "updated_at",
            "debug",
        ]

    @extend_schema_field(JobDebugSerializer(allow_null=True))
    def get_debug(self, job):
        if not job.debug_mode:
            return None
        runs = [] if self.context.get("new_job") else sorted(job.stage_runs.all(), key=lambda r: (r.started_at, r.pk))
        return JobDebugSerializer({"stage_runs": runs, "events": job.events.order_by("created_at", "id")}).data

    @extend_schema_field(StageRunSerializer(many=True))
    def get_stages(self, job):
        """The latest run of each stage, in pipeline order."""
        if self.context.get("new_job"):
            return []  # just created: nothing has run
        latest: dict[int, StageRun] = {}
        for run in job.stage_runs.all():
            if run.index not in latest or run.attempt >= latest[run.index].attempt:
                latest[run.index] = run
        return StageRunSerializer([latest[i] for i in sorted(latest)], many=True).data

    def get_result_url(self, job) -> str | None:
        if job.status != "completed":
            return None
        url = reverse("job-result", kwargs={"pk": job.pk})
        request = self.context.get("request")
        return request.build_absolute_uri(url) if request else url


class JobResultSerializer(serializers.ModelSerializer):
    job_id = serializers.UUIDField()

    class Meta:
        model = JobResult
        fields = ["job_id", "result", "metadata", "size_bytes", "processing_time_ms", "created_at", "expires_at"]


class JobSubmittedSerializer(JobDetailSerializer):
    """The answer to a submission: the job, and whether it repeats an earlier one."""

    duplicate = serializers.BooleanField(
        help_text="True when an earlier job with the same idempotency key is returned."
    )

    class Meta(JobDetailSerializer.Meta):
        fields = [*JobDetailSerializer.Meta.fields, "duplicate"]


class JobBatchSerializer(serializers.Serializer):
    jobs = serializers.ListField(child=serializers.JSONField(), min_length=1, max_length=500)


class JobRetrySerializer(serializers.Serializer):
    from_start = serializers.BooleanField(default=False, help_text="Rerun every stage instead of resuming.")


class JobBatchItemSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    status = serializers.IntegerField(help_text="201 created, 200 duplicate, 400/403 refused.")
    job = JobSubmittedSerializer(required=False)
    errors = serializers.DictField(required=False)


class JobBatchResultSerializer(serializers.Serializer):
    results = JobBatchItemSerializer(many=True)


class JobValidSerializer(serializers.Serializer):
    valid = serializers.BooleanField()
