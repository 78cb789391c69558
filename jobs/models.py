"""Jobs, their stage runs and their results: the source of truth for every job."""

import uuid

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone


class JobStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SCHEDULED = "scheduled", "Scheduled"
    QUEUED = "queued", "Queued"
    PROCESSING = "processing", "Processing"
    RETRYING = "retrying", "Retrying"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELLING = "cancelling", "Cancelling"
    CANCELLED = "cancelled", "Cancelled"


TERMINAL_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})

# Status groups accepted by the list filter.
STATUS_GROUPS = {
    "running": [JobStatus.QUEUED, JobStatus.PROCESSING],
    "active": [s for s in JobStatus if s not in TERMINAL_STATUSES],
    "completed": [JobStatus.COMPLETED],
    "failed": [JobStatus.FAILED],
    "all": list(JobStatus),
}


class Job(models.Model):
    """One submission of input to a pipeline, and everything that happened to it."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # No index of its own: job_pipeline_created_idx (pipeline_id, created_at, id) serves every lookup by pipeline,
    # and each index costs every job two entries on the run path (the claim and the completion are not HOT updates).
    pipeline = models.ForeignKey("pipelines.Pipeline", on_delete=models.PROTECT, related_name="jobs", db_index=False)
    pipeline_version = models.PositiveIntegerField()
    pipeline_config = models.JSONField(help_text="The pipeline's config as it was when the job was submitted.")
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.PENDING)
    priority = models.PositiveSmallIntegerField(default=0, validators=[MinValueValidator(0), MaxValueValidator(10)])
    user_id = models.UUIDField(null=True, blank=True, help_text="The user the job is filed under.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    username = models.CharField(max_length=255, blank=True, default="")
    action = models.CharField(max_length=255, blank=True, default="")
    input_data = models.JSONField(default=dict)
    error_message = models.TextField(blank=True, default="")
    progress = models.FloatField(default=0.0, help_text="Percent of the pipeline done, 0 to 100.")
    attempts = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveSmallIntegerField(default=3)
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)
    owner_key = models.CharField(
        max_length=64,
        blank=True,
        default="",
        help_text="Whose idempotency keys this job counts among: a user id or `service`.",
    )
    webhook_url = models.URLField(max_length=2000, blank=True, default="")
    webhook_secret = models.CharField(max_length=255, blank=True, default="")
    request_hash = models.CharField(
        max_length=64,
        blank=True,
        default="",
        help_text="SHA-256 of the submission's canonical JSON: a reused idempotency key must repeat it.",
    )
    request_id = models.CharField(max_length=128, blank=True, default="", help_text="The API request that created it.")
    traceparent = models.CharField(
        max_length=55, blank=True, default="", help_text="W3C trace context of the request that created it."
    )
    debug_mode = models.BooleanField(
        default=False, help_text="Keep every stage's output, the last one included, and a debug log."
    )
    checkpoints_since = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Saved stage outputs from before this time are not reused (set by a retry from the start).",
    )
    run_at = models.DateTimeField(null=True, blank=True)
    locked_by = models.CharField(
        max_length=255,
        blank=True,
        default="",
        help_text="The worker thread running the job; once it finishes, the one that ran its last attempt.",
    )
    locked_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveBigIntegerField(null=True, blank=True)
    # Set by the submission (one clock for created_at and queued_at), not by save().
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # Each list filter, then the list's order: newest first, ties by id.
            models.Index(fields=["status", "-created_at", "-id"], name="job_status_created_idx"),
            models.Index(fields=["user_id", "-created_at", "-id"], name="job_user_created_idx"),
            models.Index(fields=["-created_at", "-id"], name="job_created_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(priority__lte=10), name="job_priority_0_10"),
            models.UniqueConstraint(
                fields=["owner_key", "idempotency_key"],
                condition=models.Q(idempotency_key__isnull=False),
                name="job_unique_idempotency_key",
            ),
        ]
        permissions = [
            ("view_all_jobs", "Can view every user's jobs"),
            ("cancel_job", "Can cancel jobs"),
            ("retry_job", "Can retry jobs"),
        ]

    def __str__(self):
        return f"{self.pipeline_id}:{self.id} ({self.status})"

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


class StageRunStatus(models.TextChoices):
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class StageRun(models.Model):
    """One attempt at one stage of a job; its output is the stage's checkpoint."""

    # No index of its own: stage_run_unique_attempt (job_id, index, attempt) serves every lookup by job.
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="stage_runs", db_index=False)
    index = models.PositiveSmallIntegerField(help_text="Position of the stage in the pipeline, from 0.")
    name = models.CharField(max_length=100)
    stage_type = models.CharField(max_length=100)
    status = models.CharField(max_length=16, choices=StageRunStatus.choices, default=StageRunStatus.RUNNING)
    attempt = models.PositiveIntegerField(default=1, help_text="This stage's attempt number, from 1.")
    job_attempt = models.PositiveIntegerField(default=1, help_text="The job's attempt (claim) that ran it.")
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveBigIntegerField(null=True, blank=True)
    output = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    traceback = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["job", "index", "attempt"]
        constraints = [
            models.UniqueConstraint(fields=["job", "index", "attempt"], name="stage_run_unique_attempt"),
        ]

    def __str__(self):
        return f"{self.name} #{self.attempt} ({self.status})"


class JobResult(models.Model):
    """The final output of a completed job: inline JSON, or a file when large."""

    job = models.OneToOneField(Job, on_delete=models.CASCADE, primary_key=True, related_name="result")
    result = models.JSONField(null=True, blank=True)
    result_file = models.FileField(upload_to="results/", null=True, blank=True)
    content_type = models.CharField(max_length=100, default="application/json")
    size_bytes = models.PositiveBigIntegerField(default=0)
    checksum = models.CharField(max_length=64, blank=True, default="", help_text="SHA-256 of the stored result.")
    metadata = models.JSONField(default=dict, blank=True)
    processing_time_ms = models.PositiveBigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return f"result of {self.job_id}"

    @property
    def is_file(self) -> bool:
        return bool(self.result_file)


class WorkerProcess(models.Model):
    """A Dramatiq worker process, as its heartbeat reports it."""

    worker_id = models.CharField(max_length=255, unique=True, help_text="host:pid:boot id; prefixes `locked_by`.")
    hostname = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    queues = models.JSONField(default=list)
    threads = models.PositiveSmallIntegerField(default=0)
    started_at = models.DateTimeField()
    last_seen_at = models.DateTimeField(db_index=True)
    stopped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-last_seen_at"]

    def __str__(self):
        return self.worker_id


class JobEventType(models.TextChoices):
    CREATED = "job.created", "Created"
    STARTED = "job.started", "Started"
    RETRYING = "job.retrying", "Retrying"
    COMPLETED = "job.completed", "Completed"
    FAILED = "job.failed", "Failed"
    CANCELLED = "job.cancelled", "Cancelled"


TERMINAL_EVENTS = frozenset({JobEventType.COMPLETED, JobEventType.FAILED, JobEventType.CANCELLED})


class JobEvent(models.Model):
    """A change of a job's state, written in the same transaction as the change (the outbox).

    Every transition writes one: it is the job's history and the source of its
    webhook deliveries. `notify` is set when, at write time, someone listens
    (the job's own `webhook_url` for a terminal event, or a subscription); those
    rows wait with `dispatched_at` unset until the webhooks dispatcher has
    turned them into deliveries.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="events", db_index=False)
    type = models.CharField(max_length=32, choices=JobEventType.choices)
    data = models.JSONField(default=dict, blank=True, help_text="Facts of the change: attempt, worker, error, ...")
    notify = models.BooleanField(default=False)
    created_at = models.DateTimeField()
    dispatched_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(fields=["job", "created_at"], name="job_event_job_idx"),
            models.Index(
                fields=["created_at"],
                name="job_event_undispatched_idx",
                condition=models.Q(notify=True, dispatched_at__isnull=True),
            ),
        ]

    def __str__(self):
        return f"{self.type} {self.job_id} at {self.created_at:%Y-%m-%d %H:%M:%S.%f}"


class BulkOperationKind(models.TextChoices):
    CANCEL = "cancel", "Cancel"
    RETRY = "retry", "Retry (resume)"
    RETRY_FROM_START = "retry_from_start", "Retry from the start"
    REQUEUE = "requeue", "Requeue"
    DELETE = "delete", "Delete"


class BulkOperationStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    CANCELLED = "cancelled", "Stopped"
    FAILED = "failed", "Failed"


class BulkOperation(models.Model):
    """An action on every job matching an admin filter, run in the background in chunks.

    `criteria` is the filter as it was when the operator asked (periods already
    turned into absolute times, `until` bounding the creation time), so the set
    does not grow while it runs. `cursor` is the last job id handled: a worker
    that dies mid-way leaves the rest to the next run. Each job's outcome is
    written by the job's own service, with its audit row.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=32, choices=BulkOperationKind.choices)
    criteria = models.JSONField(default=dict, help_text="The filter snapshot the operation works through.")
    description = models.CharField(max_length=500, blank=True, default="", help_text="The filter, in words.")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(max_length=16, choices=BulkOperationStatus.choices, default=BulkOperationStatus.QUEUED)
    total = models.PositiveIntegerField(null=True, blank=True, help_text="Jobs the filter matched when it started.")
    done = models.PositiveIntegerField(default=0, help_text="Jobs handled so far.")
    succeeded = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0, help_text="Jobs whose state no longer allowed the action.")
    failed = models.PositiveIntegerField(default=0)
    summary = models.JSONField(default=dict, blank=True, help_text="Skips by status and the first errors.")
    cursor = models.CharField(max_length=64, blank=True, default="")
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    stop_requested = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.get_kind_display()} — {self.description or 'all jobs'} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in (BulkOperationStatus.COMPLETED, BulkOperationStatus.CANCELLED, BulkOperationStatus.FAILED)

    @property
    def percent(self) -> float:
        if self.is_finished and self.status == BulkOperationStatus.COMPLETED:
            return 100.0
        return round(100 * self.done / self.total, 1) if self.total else 0.0


class DashboardSnapshot(models.Model):
    """The dashboard's slowest aggregates, recomputed in the background (see jobs.snapshots).

    Reading seven days of statistics and thirty days of history at every
    refresh would cost more than the rest of the page together; a worker
    stores them here every minute and the dashboard reads one row.
    """

    key = models.CharField(max_length=64, primary_key=True)
    data = models.JSONField(default=dict)
    computed_at = models.DateTimeField()

    def __str__(self):
        return f"{self.key} at {self.computed_at:%Y-%m-%d %H:%M:%S}"
