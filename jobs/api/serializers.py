"""Input and output shapes of the jobs API."""

from urllib.parse import parse_qsl, urlsplit

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from audit.redaction import is_sensitive_name
from jobsite.api.validation import validate_storable

from ..models import Job, JobResult, StageRun


class JobSubmitSerializer(serializers.Serializer):
    """Body of `POST /api/v1/jobs/`."""

    pipeline = serializers.CharField(max_length=100, required=False, help_text="Name of an active pipeline.")
    workflow_name = serializers.CharField(
        max_length=100, required=False, write_only=True, help_text="Alias of `pipeline`."
    )
    input_data = serializers.JSONField(help_text="A JSON object, validated against the pipeline's input schema.")
    priority = serializers.IntegerField(min_value=0, max_value=10, default=0)
    user_id = serializers.UUIDField(required=False, allow_null=True)
    username = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")
    action = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")
    max_attempts = serializers.IntegerField(min_value=1, max_value=20, required=False, allow_null=True)
    run_at = serializers.DateTimeField(required=False, allow_null=True)
    webhook_url = serializers.URLField(
        max_length=2000, required=False, allow_blank=True, default="", help_text="Called when the job finishes."
    )
    webhook_secret = serializers.CharField(
        max_length=255, required=False, allow_blank=True, default="", write_only=True, help_text="Never returned."
    )
    idempotency_key = serializers.CharField(
        max_length=255,
        required=False,
        allow_null=True,
        help_text="Repeat a submission safely: the same owner and key return the first job. "
        "Also accepted as the `Idempotency-Key` header.",
    )

    def validate_input_data(self, value):
        if not isinstance(value, dict):
            raise serializers.ValidationError("Must be a JSON object.")
        validate_storable(value)
        return value

    def validate_webhook_url(self, value):
        """Refuse credentials in the URL: they would be stored and shown with the job; `webhook_secret` signs."""
        try:
            parts = urlsplit(value)
        except ValueError as exc:
            raise serializers.ValidationError("Enter a valid URL.") from exc
        if parts.username is not None or parts.password is not None:
            raise serializers.ValidationError(
                "Must not contain credentials (user:password@); the callback is signed with webhook_secret."
            )
        names = [name for part in (parts.query, parts.fragment) for name, _ in parse_qsl(part, keep_blank_values=True)]
        secret_names = sorted({name for name in names if is_sensitive_name(name)})
        if secret_names:
            raise serializers.ValidationError(
                f"Must not carry secrets in its query ({', '.join(secret_names)}); "
                "the callback is signed with webhook_secret."
            )
        return value

    def validate(self, attrs):
        alias = attrs.pop("workflow_name", None)
        if "pipeline" not in attrs:
            if alias is None:
                raise serializers.ValidationError({"pipeline": ["This field is required."]})
            attrs["pipeline"] = alias
        return attrs


class StageRunSerializer(serializers.ModelSerializer):
    attempts = serializers.IntegerField(source="attempt")
    started = serializers.DateTimeField(source="started_at")
    finished = serializers.DateTimeField(source="finished_at")

    class Meta:
        model = StageRun
        fields = ["name", "status", "attempts", "started", "finished", "duration_ms", "error"]


class JobSummarySerializer(serializers.ModelSerializer):
    """The light shape used in lists: never input data or results."""

    pipeline = serializers.CharField(source="pipeline.name")

    class Meta:
        model = Job
        fields = [
            "id",
            "pipeline",
            "status",
            "priority",
            "user_id",
            "username",
            "action",
            "attempts",
            "progress",
            "created_at",
            "queued_at",
            "started_at",
            "completed_at",
            "duration_ms",
            "error_message",
        ]


class JobDetailSerializer(JobSummarySerializer):
    """Everything about one job."""

    stages = serializers.SerializerMethodField()
    result_url = serializers.SerializerMethodField()

    class Meta(JobSummarySerializer.Meta):
        fields = [
            *JobSummarySerializer.Meta.fields,
            "input_data",
            "pipeline_version",
            "max_attempts",
            "stages",
            "result_url",
            "webhook_url",
            "idempotency_key",
            "run_at",
            "locked_by",
            "heartbeat_at",
            "updated_at",
        ]

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
