"""Every change of a job's state: submit, enqueue, claim, run, complete, fail."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jsonschema
from django.conf import settings
from django.core.files.base import ContentFile
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from audit.services import audit_record
from pipelines.deadline import JobHandBack
from pipelines.executor import JobCancelled, StageFailed, execute_stages
from pipelines.models import Pipeline

from .models import Job, JobResult, JobStatus, WorkerProcess

logger = logging.getLogger(__name__)


class JobSubmitError(ValueError):
    """The submission is invalid; `errors` maps each field to its messages."""

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__("; ".join(f"{k}: {', '.join(v)}" for k, v in errors.items()))
        self.errors = errors


@dataclass(frozen=True)
class JobSubmission:
    """What a client asks for when it submits a job."""

    pipeline: str
    input_data: dict
    priority: int = 0
    user_id: uuid.UUID | None = None
    username: str = ""
    action: str = ""
    max_attempts: int | None = None
    run_at: datetime | None = None
    webhook_url: str = ""
    webhook_secret: str = ""
    idempotency_key: str | None = None

    @property
    def owner_key(self) -> str:
        """Whose idempotency keys this submission is checked against."""
        return str(self.user_id) if self.user_id else "service"


class JobStateError(Exception):
    """The job's status does not allow the operation (the API answers 409)."""

    def __init__(self, job: Job, operation: str):
        super().__init__(f"A {job.status} job cannot be {operation}.")
        self.job = job


WAITING_STATUSES = frozenset({JobStatus.PENDING, JobStatus.SCHEDULED, JobStatus.QUEUED, JobStatus.RETRYING})
# A job its worker holds; one that finishes while `cancelling` still completes or fails.
RUNNING_STATUSES = [JobStatus.PROCESSING, JobStatus.CANCELLING]


_process: dict[str, Any] = {}


def process_id() -> str:
    """Identify this worker process: host, pid and a boot id (pids are reused)."""
    if _process.get("pid") != os.getpid():
        _process.update(pid=os.getpid(), id=f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}")
    return _process["id"]


def worker_id() -> str:
    """Identify this worker thread in `locked_by`: `<process id>/<thread name>`."""
    return f"{process_id()}/{threading.current_thread().name}"


def worker_beat(*, queues: list[str]) -> int:
    """Record this worker process as alive and refresh the heartbeat of every job it runs.

    Returns the number of jobs whose heartbeat was refreshed.
    """
    now = timezone.now()
    seen = {"hostname": socket.gethostname(), "pid": os.getpid(), "queues": queues, "last_seen_at": now}
    WorkerProcess.objects.update_or_create(
        worker_id=process_id(), defaults=seen, create_defaults={**seen, "started_at": now}
    )
    held = Job.objects.filter(locked_by__startswith=f"{process_id()}/", status__in=RUNNING_STATUSES)
    return held.filter(pk__in=running_job_ids()).update(heartbeat_at=now)


def worker_stopped() -> None:
    """Record that this worker process shut down."""
    WorkerProcess.objects.filter(worker_id=process_id()).update(stopped_at=timezone.now())


def _input_errors(pipeline: Pipeline, input_data: Any) -> list[str]:
    if not isinstance(input_data, dict):
        return ["Must be a JSON object."]
    size = len(json.dumps(input_data, separators=(",", ":")).encode())
    if size > settings.JOB_INPUT_MAX_BYTES:
        return [f"Is {size} bytes encoded; the limit is {settings.JOB_INPUT_MAX_BYTES}."]
    schema = pipeline.config.get("input_schema")
    if not schema:
        return []
    validator = jsonschema.Draft202012Validator(schema)
    return [
        f"{'.'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}"
        for e in sorted(validator.iter_errors(input_data), key=lambda e: list(e.absolute_path))
    ]


def job_validate(*, submission: JobSubmission) -> Pipeline:
    """Check a submission against its pipeline; return the pipeline or raise JobSubmitError."""
    pipeline = Pipeline.objects.filter(name=submission.pipeline, is_active=True).first()
    if pipeline is None:
        raise JobSubmitError({"pipeline": [f"No active pipeline named {submission.pipeline!r}."]})
    problems = _input_errors(pipeline, submission.input_data)
    if problems:
        raise JobSubmitError({"input_data": problems})
    return pipeline


def _existing_submission(submission: JobSubmission) -> Job | None:
    if submission.idempotency_key is None:
        return None
    job = Job.objects.filter(owner_key=submission.owner_key, idempotency_key=submission.idempotency_key).first()
    if job is not None:
        job.duplicate = True
    return job


def job_submit(*, submission: JobSubmission, created_by=None) -> Job:
    """Create a job and hand it to the broker once the transaction commits.

    The job is `pending` until the broker has its message, then `queued`; a
    job with a future `run_at` is `scheduled`. If the broker cannot be reached
    the job stays `pending` and nothing is lost.

    A submission repeating an `idempotency_key` of the same owner returns the
    existing job with `duplicate` set instead of creating one; a unique
    constraint settles two concurrent submissions.
    """
    pipeline = job_validate(submission=submission)
    if existing := _existing_submission(submission):
        return existing
    now = timezone.now()
    scheduled = submission.run_at is not None and submission.run_at > now
    try:
        job = _job_create(submission=submission, pipeline=pipeline, created_by=created_by, now=now, scheduled=scheduled)
    except IntegrityError:
        if existing := _existing_submission(submission):
            return existing
        raise
    job.duplicate = False
    return job


def _job_create(*, submission: JobSubmission, pipeline: Pipeline, created_by, now: datetime, scheduled: bool) -> Job:
    with transaction.atomic():
        job = Job.objects.create(
            pipeline=pipeline,
            pipeline_version=pipeline.version,
            pipeline_config=pipeline.config,
            status=JobStatus.SCHEDULED if scheduled else JobStatus.PENDING,
            priority=submission.priority,
            user_id=submission.user_id,
            created_by=created_by,
            username=submission.username,
            action=submission.action,
            input_data=submission.input_data,
            max_attempts=(
                submission.max_attempts or pipeline.config.get("max_attempts") or settings.JOB_DEFAULT_MAX_ATTEMPTS
            ),
            run_at=submission.run_at,
            webhook_url=submission.webhook_url,
            webhook_secret=submission.webhook_secret,
            idempotency_key=submission.idempotency_key,
            owner_key=submission.owner_key,
        )
        audit_record(app="jobs", entity="job", verb="create", resource_id=job.pk, details={"pipeline": pipeline.name})
        delay_ms = int((submission.run_at - now).total_seconds() * 1000) if scheduled else None
        transaction.on_commit(lambda: job_enqueue(job_id=job.id, delay_ms=delay_ms))
    return job


def job_enqueue(*, job_id: uuid.UUID, delay_ms: int | None = None) -> bool:
    """Send a pending or scheduled job to the broker; return whether it was sent.

    The job is marked `queued` before the send so that a fast worker finds it
    claimable; if the send fails it goes back to where it was, to be re-sent.
    """
    previous, priority = Job.objects.filter(pk=job_id).values_list("status", "priority").first() or (None, 0)
    if previous not in (JobStatus.PENDING, JobStatus.SCHEDULED):
        return False
    if previous == JobStatus.PENDING:
        marked = Job.objects.filter(pk=job_id, status=JobStatus.PENDING).update(
            status=JobStatus.QUEUED, queued_at=timezone.now()
        )
        if not marked:
            return False
    if not _send(job_id, delay_ms=delay_ms, priority=priority):
        if previous == JobStatus.PENDING:
            Job.objects.filter(pk=job_id, status=JobStatus.QUEUED).update(status=JobStatus.PENDING, queued_at=None)
        return False
    return True


def job_resend(*, job: Job) -> bool:
    """Send a queued, scheduled or retrying job's message again; return whether this call sent it.

    `queued_at` records the send, and only the caller whose conditional update
    moved it sends, so concurrent recoveries send once. A duplicate message is
    harmless: only one can claim the job.
    """
    now = timezone.now()
    moved = Job.objects.filter(pk=job.pk, status=job.status, queued_at=job.queued_at).update(queued_at=now)
    if not moved:
        return False
    delay_ms = None
    if job.status in (JobStatus.SCHEDULED, JobStatus.RETRYING) and job.run_at and job.run_at > now:
        delay_ms = int((job.run_at - now).total_seconds() * 1000)
    return _send(job.pk, delay_ms=delay_ms, priority=job.priority)


def job_cancel(*, job_id: uuid.UUID) -> Job:
    """Cancel a job: a waiting job at once, a running one at its next check.

    Waiting jobs become `cancelled` (their broker message, when it comes, finds
    nothing to claim); a `processing` job becomes `cancelling` and its worker
    stops it at the next stage boundary or cooperative check. Finished jobs
    raise JobStateError.
    """
    now = timezone.now()
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job_id)
        if job.status in WAITING_STATUSES:
            job.status = JobStatus.CANCELLED
            job.completed_at = now
        elif job.status == JobStatus.PROCESSING:
            job.status = JobStatus.CANCELLING
        elif job.status != JobStatus.CANCELLING:
            raise JobStateError(job, "cancelled")
        job.save(update_fields=["status", "completed_at", "updated_at"])
        audit_record(app="jobs", entity="job", verb="cancel", resource_id=job.pk, details={"status": job.status})
    return job


def job_retry(*, job_id: uuid.UUID, from_start: bool = False) -> Job:
    """Send a failed or cancelled job back to the queue.

    It resumes at the first stage without a completed run, reusing the saved
    outputs of the stages before; `from_start` reruns every stage.
    """
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job_id)
        if job.status not in (JobStatus.FAILED, JobStatus.CANCELLED):
            raise JobStateError(job, "retried")
        job.status = JobStatus.PENDING
        if from_start:
            job.checkpoints_since = timezone.now()
        job.error_message = ""
        job.started_at = job.completed_at = job.duration_ms = None
        job.locked_by = ""
        job.locked_at = None
        job.save()
        audit_record(app="jobs", entity="job", verb="retry", resource_id=job.pk, details={"from_start": from_start})
        transaction.on_commit(lambda: job_enqueue(job_id=job.pk))
    return job


def job_claim(*, job_id: str, worker: str) -> Job | None:
    """Move a job to `processing` for this worker, if it is claimable.

    A scheduled job, or one waiting for a stage retry, whose `run_at` has come
    is released first. Only a `queued` job is claimed, and only by one worker:
    the row is locked with SKIP LOCKED where the database supports it, and the
    update is conditional.
    """
    now = timezone.now()
    with transaction.atomic():
        jobs = Job.objects.filter(pk=job_id).select_related("pipeline")
        if connection.features.has_select_for_update_skip_locked:
            jobs = jobs.select_for_update(skip_locked=True, of=("self",))
        job = jobs.first()
        if job is None:
            return None
        if job.status in (JobStatus.SCHEDULED, JobStatus.RETRYING) and job.run_at and job.run_at <= now:
            job.status = JobStatus.QUEUED
            job.queued_at = now
        if job.status != JobStatus.QUEUED:
            return None
        job.status = JobStatus.PROCESSING
        job.locked_by = worker
        job.locked_at = job.heartbeat_at = now
        job.started_at = job.started_at or now
        job.attempts += 1
        job.save(
            update_fields=[
                "status",
                "queued_at",
                "locked_by",
                "locked_at",
                "heartbeat_at",
                "started_at",
                "attempts",
                "updated_at",
            ]
        )
    return job


_running: set[str] = set()
_running_lock = threading.Lock()


def running_job_ids() -> set[str]:
    """Ids of the jobs this process's threads are running right now."""
    with _running_lock:
        return set(_running)


def job_run(*, job_id: str) -> Job | None:
    """Claim a job, run its stages and record the outcome (the actor's body).

    While it runs, the job is in this process's running set: the heartbeat
    refreshes only those, and hands back any job this process holds but no
    longer runs (a database error cut its run short).
    """
    with _running_lock:
        _running.add(str(job_id))
    try:
        return _job_run(job_id=job_id)
    finally:
        with _running_lock:
            _running.discard(str(job_id))


def _job_run(*, job_id: str) -> Job | None:
    worker = worker_id()
    job = job_claim(job_id=job_id, worker=worker)
    if job is None:
        logger.info("Job %s is not claimable; message ignored.", job_id)
        return None
    logger.info("Job %s claimed by %s (attempt %d).", job.id, worker, job.attempts)
    try:
        output = execute_stages(job)
    except JobCancelled:
        return job_mark_cancelled(job=job)
    except JobHandBack:
        return job_hand_back(job=job)
    except StageFailed as exc:
        if exc.retryable:
            return job_schedule_retry(job=job, failure=exc)
        return job_fail(job=job, error=str(exc))
    except DatabaseError:
        # Not the job's fault: leave it held; the heartbeat hands it back once the database answers.
        logger.exception("Job %s stopped by a database error; it will be handed back.", job.id)
        raise
    except Exception as exc:
        logger.exception("Job %s crashed outside its stages.", job.id)
        return job_fail(job=job, error=f"{type(exc).__name__}: {exc}")
    return job_complete(job=job, output=output)


def _finish_held(job: Job, from_statuses, to_status: str, *, now: datetime, **fields) -> int:
    """Finish a job this worker still holds (its status and lock unchanged); return 1 if it did."""
    return Job.objects.filter(pk=job.pk, status__in=from_statuses, locked_by=job.locked_by).update(
        status=to_status,
        completed_at=now,
        duration_ms=_duration_ms(job, now),
        locked_by="",
        locked_at=None,
        updated_at=now,
        **fields,
    )


def _duration_ms(job: Job, end: datetime) -> int | None:
    return max(0, round((end - job.started_at).total_seconds() * 1000)) if job.started_at else None


def _result_for(job: Job, output: Any, now: datetime) -> JobResult:
    encoded = json.dumps(output, separators=(",", ":")).encode()
    result = JobResult(
        job=job,
        size_bytes=len(encoded),
        checksum=hashlib.sha256(encoded).hexdigest(),
        processing_time_ms=_duration_ms(job, now),
        metadata={"pipeline": job.pipeline.name, "pipeline_version": job.pipeline_version},
        expires_at=now + timedelta(days=settings.RESULT_TTL_DAYS),
    )
    if len(encoded) > settings.RESULT_INLINE_MAX_BYTES:
        result.result_file.save(f"{job.id}.json", ContentFile(encoded), save=False)
    else:
        result.result = output
    return result


def job_complete(*, job: Job, output: Any) -> Job:
    """Store the job's result and mark it `completed`, if this worker still holds it."""
    now = timezone.now()
    result = _result_for(job, output, now)
    with transaction.atomic():
        updated = _finish_held(job, RUNNING_STATUSES, JobStatus.COMPLETED, now=now, progress=100.0, error_message="")
        if not updated:
            logger.warning("Job %s was taken from this worker before it completed; result dropped.", job.pk)
            if result.result_file:
                result.result_file.delete(save=False)
            job.refresh_from_db()
            return job
        JobResult.objects.filter(job=job).delete()
        result.save(force_insert=True)
    job.refresh_from_db()
    logger.info("Job %s completed in %s ms.", job.pk, job.duration_ms)
    return job


def stage_retry_delay_ms(attempt: int) -> int:
    """Exponential backoff with jitter for a stage's `attempt`-th retry.

    base * 2^(attempt-1), capped, then a random point in its upper half, so
    that jobs failing together do not come back together.
    """
    ceiling = min(settings.STAGE_RETRY_BACKOFF_MAX_MS, settings.STAGE_RETRY_BACKOFF_BASE_MS * 2 ** (attempt - 1))
    return int(ceiling * random.uniform(0.5, 1.0))


def job_schedule_retry(*, job: Job, failure: StageFailed) -> Job:
    """Put a job whose stage failed with retries left back on the queue after a backoff.

    The job waits as `retrying` with `run_at` set; its broker message is sent
    with the delay, so no worker thread sleeps through the backoff. The next
    run resumes at the failed stage.
    """
    delay_ms = stage_retry_delay_ms(failure.attempt)
    now = timezone.now()
    with transaction.atomic():
        updated = Job.objects.filter(pk=job.pk, status=JobStatus.PROCESSING, locked_by=job.locked_by).update(
            status=JobStatus.RETRYING,
            run_at=now + timedelta(milliseconds=delay_ms),
            error_message=str(failure)[:10_000],
            locked_by="",
            locked_at=None,
            updated_at=now,
        )
        if updated:
            transaction.on_commit(lambda: _send(job.pk, delay_ms=delay_ms, priority=job.priority))
    if not updated:
        # Cancelled while the stage ran: finish the cancellation instead.
        return job_mark_cancelled(job=job)
    logger.info("Job %s: %s; retrying in %d ms.", job.pk, failure, delay_ms)
    job.refresh_from_db()
    return job


def _send(job_id, *, delay_ms: int | None, priority: int) -> bool:
    from .actors import jobs_run

    try:
        jobs_run.send_with_options(args=(str(job_id),), delay=delay_ms, priority=priority)
    except Exception:
        logger.exception("Could not send job %s to the broker; it will be re-sent.", job_id)
        return False
    return True


def job_hand_back(*, job: Job) -> Job:
    """Give a job back to the queue because its worker is shutting down.

    The interrupted attempt does not count against `max_attempts`: the job did
    nothing wrong. Another worker resumes it at the interrupted stage.
    """
    with transaction.atomic():
        updated = Job.objects.filter(pk=job.pk, status=JobStatus.PROCESSING, locked_by=job.locked_by).update(
            status=JobStatus.PENDING,
            attempts=F("attempts") - 1,
            locked_by="",
            locked_at=None,
            updated_at=timezone.now(),
        )
        if updated:
            transaction.on_commit(lambda: job_enqueue(job_id=job.pk))
    if not updated:
        return job_mark_cancelled(job=job)
    logger.info("Job %s handed back: the worker is shutting down.", job.pk)
    job.refresh_from_db()
    return job


def job_mark_cancelled(*, job: Job) -> Job:
    """Finish a job its worker stopped on request (`cancelling` -> `cancelled`)."""
    _finish_held(job, [JobStatus.CANCELLING], JobStatus.CANCELLED, now=timezone.now())
    job.refresh_from_db()
    logger.info("Job %s stopped on request: %s.", job.pk, job.status)
    return job


def job_fail(*, job: Job, error: str) -> Job:
    """Mark the job `failed` with its error, if this worker still holds it."""
    _finish_held(job, RUNNING_STATUSES, JobStatus.FAILED, now=timezone.now(), error_message=error[:10_000])
    job.refresh_from_db()
    logger.info("Job %s failed: %s", job.pk, error)
    return job


def job_results_purge_expired(*, batch_size: int = 1000, dry_run: bool = False) -> Iterator[int]:
    """Delete expired results and their files in batches, yielding each batch's size.

    With `dry_run`, nothing is deleted and the one yielded count is what would be.
    """
    expired = JobResult.objects.filter(expires_at__lt=timezone.now()).order_by("pk")
    if dry_run:
        yield expired.count()
        return
    while True:
        batch = list(expired[:batch_size])
        if not batch:
            return
        for result in batch:
            if result.result_file:
                result.result_file.delete(save=False)
        deleted, _ = JobResult.objects.filter(pk__in=[r.pk for r in batch]).delete()
        yield deleted


def jobs_purge(
    *, cutoff: datetime, statuses: list[str], batch_size: int = 1000, dry_run: bool = False
) -> Iterator[int]:
    """Delete finished jobs (with stage runs, results and result files) older than `cutoff`, in batches.

    Age is the completion time, or the creation time for a job that never
    completed. Yields each batch's count; with `dry_run`, one count of what
    would go.
    """
    old = (
        Job.objects.filter(status__in=statuses)
        .filter(Q(completed_at__lt=cutoff) | Q(completed_at__isnull=True, created_at__lt=cutoff))
        .order_by("created_at")
    )
    if dry_run:
        yield old.count()
        return
    while True:
        ids = list(old.values_list("pk", flat=True)[:batch_size])
        if not ids:
            return
        for result in JobResult.objects.filter(job_id__in=ids).exclude(result_file=""):
            result.result_file.delete(save=False)
        with transaction.atomic():
            deleted = Job.objects.filter(pk__in=ids).delete()[1].get("jobs.Job", 0)
        yield deleted
