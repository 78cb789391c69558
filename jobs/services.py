"""Changes of a job's state made on request: submit, enqueue, cancel, retry.

The worker's own path (claim, stages, completion) is in :mod:`jobs.run`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import dramatiq
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from audit.models import AuditLog
from audit.services import audit_entries, audit_record, audit_written
from jobsite.broker.bulk import enqueue_many
from jobsite.bulk_insert import insert_rows
from jobsite.observability import metrics
from pipelines.models import Pipeline
from pipelines.schemas import input_validator

from .events import dispatch_after_commit, job_event_record, job_events_rows
from .models import Job, JobEvent, JobEventType, JobStatus

logger = logging.getLogger(__name__)


class JobSubmitError(ValueError):
    """The submission is invalid; `errors` maps each field to its messages."""

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__("; ".join(f"{k}: {', '.join(v)}" for k, v in errors.items()))
        self.errors = errors


class IdempotencyKeyReused(ValueError):
    """The idempotency key was used before by the same owner for a different submission (422)."""

    def __init__(self, job: Job):
        super().__init__("This idempotency key was used for a different submission.")
        self.job = job


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
    debug_mode: bool = False

    @property
    def owner_key(self) -> str:
        """Whose idempotency keys this submission is checked against."""
        return str(self.user_id) if self.user_id else "service"

    def fingerprint(self) -> str:
        """SHA-256 of the submission's canonical JSON, the idempotency key left out.

        The same key with the same fingerprint is a repeat; with another, a reuse.
        """
        facts = {k: v for k, v in asdict(self).items() if k != "idempotency_key"}
        canonical = json.dumps(facts, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass
class SubmitContext:
    """Facts of the request a submission came in (recorded on the job)."""

    created_by: Any = None
    request_id: str = ""
    traceparent: str = ""


class JobStateError(Exception):
    """The job's status does not allow the operation (the API answers 409)."""

    def __init__(self, job: Job, operation: str):
        super().__init__(f"A {job.status} job cannot be {operation}.")
        self.job = job


WAITING_STATUSES = frozenset({JobStatus.PENDING, JobStatus.SCHEDULED, JobStatus.QUEUED, JobStatus.RETRYING})


# -- pipelines, as submissions see them ------------------------------------------------


@dataclass(frozen=True)
class PipelineSnapshot:
    """An active pipeline at one version, with its compiled input validator."""

    id: int
    name: str
    version: int
    config: dict
    validator: Any = field(compare=False, repr=False)

    @property
    def max_attempts(self) -> int:
        return self.config.get("max_attempts") or settings.JOB_DEFAULT_MAX_ATTEMPTS


_validators: dict[tuple[int, int], tuple[dict | None, Any]] = {}
_VALIDATORS_MAX = 256


def _input_validator(pipeline_id: int, version: int, schema: dict | None):
    """The compiled input-schema validator of a pipeline version, cached per process.

    Compiling a schema costs far more than comparing it: the cached validator
    is reused while the pipeline's version and schema are the ones it was
    compiled from. It resolves references only inside the schema (see
    pipelines.schemas): a submission never makes the server fetch anything.
    """
    key = (pipeline_id, version)
    cached = _validators.get(key)
    if cached is not None and cached[0] == schema:
        return cached[1]
    validator = input_validator(schema) if schema else None
    if len(_validators) >= _VALIDATORS_MAX:
        _validators.clear()
    _validators[key] = (schema, validator)
    return validator


_snapshots: dict[tuple, PipelineSnapshot] = {}


def active_pipeline(name: str) -> PipelineSnapshot:
    """The active pipeline called `name`, or JobSubmitError.

    One small query reads its id, version and last change; its config and
    compiled input validator are cached per process by those, so only a
    changed pipeline reads its config again.
    """
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, version, updated_at FROM pipelines_pipeline WHERE name = %s AND is_active", [name])
        row = cursor.fetchone()
    if row is None:
        raise JobSubmitError({"pipeline": [f"No active pipeline named {name!r}."]})
    snapshot = _snapshots.get((name, *row))
    if snapshot is None:
        pipeline_id, version, _ = row
        config = Pipeline.objects.values_list("config", flat=True).get(pk=pipeline_id)
        validator = _input_validator(pipeline_id, version, config.get("input_schema"))
        snapshot = PipelineSnapshot(pipeline_id, name, version, config, validator)
        if len(_snapshots) >= _VALIDATORS_MAX:
            _snapshots.clear()
        _snapshots[(name, *row)] = snapshot
    return snapshot


def _input_errors(pipeline: PipelineSnapshot, input_data: Any) -> list[str]:
    if not isinstance(input_data, dict):
        return ["Must be a JSON object."]
    size = len(json.dumps(input_data, separators=(",", ":")).encode())
    if size > settings.JOB_INPUT_MAX_BYTES:
        return [f"Is {size} bytes encoded; the limit is {settings.JOB_INPUT_MAX_BYTES}."]
    if pipeline.validator is None:
        return []
    return [
        f"{'.'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}"
        for e in sorted(pipeline.validator.iter_errors(input_data), key=lambda e: list(e.absolute_path))
    ]


def job_validate(*, submission: JobSubmission) -> PipelineSnapshot:
    """Check a submission against its pipeline; return the pipeline or raise JobSubmitError."""
    pipeline = active_pipeline(submission.pipeline)
    problems = _input_errors(pipeline, submission.input_data)
    if problems:
        raise JobSubmitError({"input_data": problems})
    return pipeline


# -- submitting ------------------------------------------------------------------------


def job_submit(*, submission: JobSubmission, context: SubmitContext | None = None) -> Job:
    """Create a job and hand it to the broker; see :func:`job_submit_many`."""
    result = job_submit_many(submissions=[submission], context=context)[0]
    if isinstance(result, Exception):
        raise result
    return result


def job_submit_many(
    *, submissions: Sequence[JobSubmission], context: SubmitContext | None = None
) -> list[Job | JobSubmitError | IdempotencyKeyReused]:
    """Create jobs in one transaction and hand them to the broker; one result per submission, in order.

    A result is the created `Job` (`duplicate` False), the earlier job of a
    repeated idempotency key (`duplicate` True), or the error of an invalid
    submission. The jobs, their `job.created` events and their audit rows are
    written by multi-row inserts in one transaction. A job is `pending` until
    the broker has its message, then `queued`; a job with a future `run_at` is
    `scheduled`. On the database broker the message is written in the same
    transaction and the job is `queued` at once; on another broker the
    messages are sent after the commit, and a job whose send failed stays
    `pending` for recovery to re-send: nothing is lost.

    An idempotency key repeated by the same owner returns the earlier job when
    the submission is the same, and IdempotencyKeyReused when it differs; a
    unique constraint settles concurrent submissions.
    """
    context = context or SubmitContext()
    results: list[Any] = [None] * len(submissions)
    pipelines: dict[str, PipelineSnapshot] = {}
    valid: list[tuple[int, JobSubmission, PipelineSnapshot]] = []
    for index, submission in enumerate(submissions):
        try:
            if submission.pipeline not in pipelines:
                pipelines[submission.pipeline] = active_pipeline(submission.pipeline)
            pipeline = pipelines[submission.pipeline]
            problems = _input_errors(pipeline, submission.input_data)
            if problems:
                raise JobSubmitError({"input_data": problems})
        except JobSubmitError as exc:
            results[index] = exc
        else:
            valid.append((index, submission, pipeline))
    valid = _drop_repeats(valid, results)
    if not valid:
        return results
    now = timezone.now()
    try:
        created: list[Job | None] = list(_create_jobs(valid, context, now))
    except IntegrityError:
        # A concurrent submission took one of the idempotency keys: one at a time, then.
        created = []
        for item in valid:
            try:
                created += _create_jobs([item], context, now)
            except IntegrityError:
                if _drop_repeats([item], results):
                    raise  # not a taken key after all
                created.append(None)
    for (index, _, _), job in zip(valid, created, strict=True):
        if job is not None:
            results[index] = job
    return results


def _drop_repeats(valid: list, results: list) -> list:
    """Answer the submissions whose idempotency key their owner used before; return the others."""
    keys_by_owner: dict[str, list[str]] = {}
    for _, submission, _ in valid:
        if submission.idempotency_key is not None:
            keys_by_owner.setdefault(submission.owner_key, []).append(submission.idempotency_key)
    if not keys_by_owner:
        return valid
    existing: dict[tuple[str, str], Job] = {}
    for owner, keys in keys_by_owner.items():
        for job in Job.objects.filter(owner_key=owner, idempotency_key__in=keys).select_related("pipeline"):
            existing[(owner, job.idempotency_key)] = job
    remaining = []
    for index, submission, pipeline in valid:
        job = existing.get((submission.owner_key, submission.idempotency_key))
        if job is None:
            remaining.append((index, submission, pipeline))
        elif job.request_hash and job.request_hash != submission.fingerprint():
            results[index] = IdempotencyKeyReused(job)
        else:
            job.duplicate = True
            results[index] = job
    return remaining


def _create_jobs(valid: list, context: SubmitContext, now: datetime) -> list[Job]:
    """Insert the jobs, their events and audit rows in one transaction; send or schedule their messages."""
    broker = dramatiq.get_broker()
    in_transaction = getattr(broker, "enqueues_in_transaction", False)
    jobs = []
    pipeline_rows: dict[int, Pipeline] = {}  # one per pipeline, shared by its jobs
    for _, submission, pipeline in valid:
        if pipeline.id not in pipeline_rows:
            pipeline_rows[pipeline.id] = Pipeline(id=pipeline.id, name=pipeline.name, version=pipeline.version)
        scheduled = submission.run_at is not None and submission.run_at > now
        status = JobStatus.SCHEDULED if scheduled else (JobStatus.QUEUED if in_transaction else JobStatus.PENDING)
        jobs.append(
            Job(
                id=uuid.uuid4(),
                pipeline=pipeline_rows[pipeline.id],
                pipeline_version=pipeline.version,
                pipeline_config=pipeline.config,
                status=status,
                priority=submission.priority,
                user_id=submission.user_id,
                created_by=context.created_by,
                username=submission.username,
                action=submission.action,
                input_data=submission.input_data,
                max_attempts=submission.max_attempts or pipeline.max_attempts,
                run_at=submission.run_at,
                webhook_url=submission.webhook_url,
                webhook_secret=submission.webhook_secret,
                idempotency_key=submission.idempotency_key,
                owner_key=submission.owner_key,
                request_hash=submission.fingerprint() if submission.idempotency_key is not None else "",
                request_id=context.request_id,
                traceparent=context.traceparent,
                debug_mode=submission.debug_mode,
                queued_at=now if status == JobStatus.QUEUED else None,
                created_at=now,
                updated_at=now,
            )
        )
    events = job_events_rows(jobs, JobEventType.CREATED, now, data_for=_created_data)
    entries = audit_entries(
        app="jobs", entity="job", verb="create", rows=[(job.pk, {"pipeline": job.pipeline.name}) for job in jobs]
    )
    # One transaction; on PostgreSQL one statement, which commits by itself: a transaction block
    # (or a savepoint in the caller's) only when the database broker's messages join it.
    single_statement = connection.vendor == "postgresql" and not (in_transaction or connection.in_atomic_block)
    with nullcontext() if single_statement else transaction.atomic():
        _insert_submissions(jobs, events, entries)
        dispatch_after_commit([event.id for event in events if event.notify])
        if in_transaction:
            # The database broker writes the messages in this same transaction: sent if and only if committed.
            enqueue_many([_message(job, now) for job in jobs], broker=broker)
        else:
            transaction.on_commit(lambda: _send_after_commit(jobs, now))
    for job in jobs:
        job.duplicate = False
    metrics.jobs_submitted(job.pipeline.name for job in jobs)
    return jobs


def _insert_submissions(jobs: list[Job], events: list[JobEvent], entries: list) -> None:
    """Insert the jobs, their `job.created` events and their audit rows: one statement on PostgreSQL."""
    if connection.vendor != "postgresql":
        Job.objects.bulk_create(jobs)
        JobEvent.objects.bulk_create(events)
        audit_written([row.pk for row in AuditLog.objects.bulk_create(entries)])
        return
    params: list[Any] = []
    sql = (
        f"WITH j AS ({insert_rows(Job, jobs, params)}), e AS ({insert_rows(JobEvent, events, params)}) "
        f"{insert_rows(AuditLog, entries, params)} RETURNING id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        audit_written([row[0] for row in cursor.fetchall()])


def _created_data(job: Job) -> dict:
    data: dict[str, Any] = {"status": job.status}
    if job.run_at is not None:
        data["run_at"] = job.run_at.isoformat()
    return data


def _delay_ms(job: Job, now: datetime) -> int | None:
    if job.status == JobStatus.SCHEDULED and job.run_at and job.run_at > now:
        return int((job.run_at - now).total_seconds() * 1000)
    return None


def _message(job: Job, now: datetime):
    message = _actor_for(job.priority).message_with_options(args=(str(job.pk),), priority=job.priority)
    return message, _delay_ms(job, now)


def _send_after_commit(jobs: list[Job], now: datetime) -> None:
    """Send committed jobs to the broker in one round trip, then mark the pending ones `queued` (one UPDATE).

    If the broker does not take them they stay `pending`, and recovery sends them later.
    """
    try:
        enqueue_many([_message(job, now) for job in jobs])
    except Exception:
        logger.exception("Could not send %d job(s) to the broker; they will be re-sent.", len(jobs))
        for job in jobs:
            metrics.broker_send_failed(queue=band_queue(job.priority))
        return
    pending = [job for job in jobs if job.status == JobStatus.PENDING]
    if pending:
        queued_at = timezone.now()
        ids = [job.pk for job in pending]
        if connection.vendor == "postgresql":  # the same UPDATE, without the ORM's cost per call
            with connection.cursor() as cursor:
                cursor.execute(
                    "UPDATE jobs_job SET status = 'queued', queued_at = %s WHERE id = ANY(%s) AND status = 'pending'",
                    [queued_at, ids],
                )
        else:
            Job.objects.filter(pk__in=ids, status=JobStatus.PENDING).update(
                status=JobStatus.QUEUED, queued_at=queued_at
            )
        for job in pending:
            job.status, job.queued_at = JobStatus.QUEUED, queued_at


# -- the broker ---------------------------------------------------------------------------

# Priority bands: each has its queue and actor; a worker takes higher bands first.
PRIORITY_BANDS = (("jobs.urgent", 8), ("jobs.high", 4), ("jobs", 0))


def band_queue(priority: int) -> str:
    """The queue of a job's priority band: `jobs.urgent` (8-10), `jobs.high` (4-7), `jobs` (0-3)."""
    return next(queue for queue, floor in PRIORITY_BANDS if priority >= floor)


def send_job(job_id, *, delay_ms: int | None, priority: int) -> bool:
    """Send a job's message to its priority band's queue; return whether the broker took it."""
    return _send(job_id, delay_ms=delay_ms, priority=priority)


def _actor_for(priority: int):
    from .actors import BAND_ACTORS

    return BAND_ACTORS[band_queue(priority)]


def _send(job_id, *, delay_ms: int | None, priority: int) -> bool:
    try:
        _actor_for(priority).send_with_options(args=(str(job_id),), delay=delay_ms, priority=priority)
    except Exception:
        logger.exception("Could not send job %s to the broker; it will be re-sent.", job_id)
        metrics.broker_send_failed(queue=band_queue(priority))
        return False
    return True


def job_enqueue(*, job_id: uuid.UUID, delay_ms: int | None = None) -> bool:
    """Send a pending or scheduled job to the broker; return whether it was sent.

    A pending job is marked `queued` once the broker has its message (a fast
    worker may claim it before that: a pending job is claimable); if the send
    fails it stays pending, to be re-sent.
    """
    row = Job.objects.filter(pk=job_id).values_list("status", "priority", "run_at").first()
    if row is None or row[0] not in (JobStatus.PENDING, JobStatus.SCHEDULED):
        return False
    status, priority, run_at = row
    now = timezone.now()
    if delay_ms is None and status == JobStatus.SCHEDULED and run_at and run_at > now:
        delay_ms = int((run_at - now).total_seconds() * 1000)
    if not _send(job_id, delay_ms=delay_ms, priority=priority):
        return False
    if status == JobStatus.PENDING:
        Job.objects.filter(pk=job_id, status=JobStatus.PENDING).update(status=JobStatus.QUEUED, queued_at=now)
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


# -- managing ------------------------------------------------------------------------------


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
            job_event_record(
                job_id=job.pk,
                event_type=JobEventType.CANCELLED,
                at=now,
                webhook_url=job.webhook_url,
                user_id=job.user_id,
            )
        elif job.status == JobStatus.PROCESSING:
            job.status = JobStatus.CANCELLING
        elif job.status != JobStatus.CANCELLING:
            raise JobStateError(job, "cancelled")
        job.save(update_fields=["status", "completed_at", "updated_at"])
        audit_record(app="jobs", entity="job", verb="cancel", resource_id=job.pk, details={"status": job.status})
    if job.status == JobStatus.CANCELLED:  # a running job is counted by its worker when it stops
        metrics.job_cancelled(pipeline=job.pipeline.name)
    return job


def job_retry(*, job_id: uuid.UUID, from_start: bool = False) -> Job:
    """Send a failed or cancelled job back to the queue.

    It resumes at the first stage without a completed run, reusing the saved
    outputs of the stages before; `from_start` reruns every stage. A job
    whose attempts are spent gets its pipeline's allowance again
    (`max_attempts` grows). A job scheduled for a `run_at` still ahead waits
    for it again as `scheduled`.
    """
    now = timezone.now()
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job_id)
        if job.status not in (JobStatus.FAILED, JobStatus.CANCELLED):
            raise JobStateError(job, "retried")
        job.status = JobStatus.SCHEDULED if job.run_at and job.run_at > now else JobStatus.PENDING
        if from_start:
            job.checkpoints_since = now
        if job.attempts >= job.max_attempts:
            allowance = job.pipeline_config.get("max_attempts") or settings.JOB_DEFAULT_MAX_ATTEMPTS
            job.max_attempts = job.attempts + allowance
        job.error_message = ""
        job.started_at = job.completed_at = job.duration_ms = job.queued_at = None
        job.locked_at = None
        job.save()
        audit_record(app="jobs", entity="job", verb="retry", resource_id=job.pk, details={"from_start": from_start})
        transaction.on_commit(lambda: job_enqueue(job_id=job.pk))
    return job


# The column's bound (PositiveSmallIntegerField): grants stop there.
MAX_ATTEMPTS_CEILING = 32767


def job_grant_attempt(*, job_id: uuid.UUID) -> int | None:
    """Give a job one more attempt (`max_attempts` + 1); return its new `max_attempts`, None if unchanged.

    The task API (seed 003) answers a resubmitted task with the existing one
    and raises its `max_retries` by one; this is that bump. A job already at
    the column's bound is left as it is.
    """
    with transaction.atomic():
        updated = Job.objects.filter(pk=job_id, max_attempts__lt=MAX_ATTEMPTS_CEILING).update(
            max_attempts=F("max_attempts") + 1, updated_at=timezone.now()
        )
        if not updated:
            return None
        audit_record(app="jobs", entity="job", verb="grant_attempt", resource_id=job_id)
        return Job.objects.filter(pk=job_id).values_list("max_attempts", flat=True).first()
