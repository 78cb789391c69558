"""Running a job: claim it, run its stages, record how it ended. The worker's whole path, top to bottom.

On PostgreSQL a one-stage job costs two statements, each its own transaction:

1. the claim: one conditional UPDATE ... RETURNING (so a duplicate message
   never runs a job twice at once) that also writes the `job.started` event
   and returns everything the run needs;
2. the completion: one statement that moves the job to `completed` (only if
   this worker still holds it), inserts the stage's run, upserts the result
   and writes the `job.completed` event.

Between two stages one statement saves the finished stage's run (its output is
the checkpoint a later attempt resumes from), writes the progress, refreshes
the heartbeat and reads back whether the job is being cancelled; after an
idempotent stage that write waits for the next one (at most
JOB_CHECKPOINT_INTERVAL_MS), so that a pipeline of quick idempotent stages
costs the same two statements as one stage. A retry, a failure, a
cancellation and a hand-back are one statement each as well.
Nothing the worker already knows is read again: checkpoints are read once, and
only when the job ran before (`attempts > 1`).

On other databases (SQLite) each transition writes the same rows through the
ORM inside one transaction.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import random
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connection, connections, transaction
from django.db.models import Case, F, Q, Value, When
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone
from dramatiq.middleware.time_limit import TimeLimitExceeded

from jobsite.observability.jobs import job_observed, run_observed, stage_observed
from pipelines.deadline import JobHandBack, StageTimeout
from pipelines.isolation import StageCancelled, describe, error_traceback, run_stage
from pipelines.registry import StageContext, UnknownStageType, get_stage_type

from .events import dispatch_after_commit, job_event_record, notify_sql
from .models import Job, JobEventType, JobResult, JobStatus, StageRun, StageRunStatus
from .workers import RUNNING_STATUSES, running, worker_id

logger = logging.getLogger(__name__)

ERROR_MAX_CHARS = 10_000


@dataclass
class ClaimedJob:
    """What the claim returns: everything the run needs, read once."""

    id: uuid.UUID
    pipeline: str
    pipeline_version: int
    config: dict
    input_data: Any
    attempts: int
    max_attempts: int
    priority: int
    checkpoints_since: datetime | None
    started_at: datetime
    debug_mode: bool
    webhook_url: str
    request_id: str
    user_id: uuid.UUID | None
    traceparent: str
    ready_at: datetime | None  # when it could first start: created, or its run_at if later
    worker: str

    @property
    def stages(self) -> list[dict]:
        return self.config.get("stages", [])


@dataclass
class StageRecord:
    """One run of one stage, written once when it has finished."""

    index: int
    name: str
    stage_type: str
    attempt: int
    job_attempt: int
    started_at: datetime
    status: str = StageRunStatus.RUNNING
    finished_at: datetime | None = None
    output: Any = None
    error: str = ""
    traceback: str = ""

    def finish(self, status: str, *, output: Any = None, error: BaseException | None = None) -> StageRecord:
        self.status = status
        self.finished_at = timezone.now()
        self.output = output
        if error is not None:
            self.error = describe(error)
            self.traceback = error_traceback(error) if not isinstance(error, (StageTimeout, JobHandBack)) else ""
        return self

    @property
    def duration_ms(self) -> int:
        return _elapsed_ms(self.started_at, self.finished_at or timezone.now())


# -- outcomes of running the stages ------------------------------------------------


# Each carries the stage runs still to write: the last stage's, after those whose writing was deferred.


@dataclass
class Completed:
    records: list[StageRecord]
    output: Any


@dataclass
class Failed:
    records: list[StageRecord]
    error: str
    retryable: bool = False


@dataclass
class Cancelled:
    records: list[StageRecord] = field(default_factory=list)


@dataclass
class HandedBack:
    records: list[StageRecord]


@dataclass
class Lost:
    """The job was taken from this worker while it ran (recovery gave it to another)."""


# -- the path ------------------------------------------------------------------------


def job_run(*, job_id: str) -> str | None:
    """Claim a job, run its stages and record the outcome; return the job's new status.

    A duplicate or stale message finds nothing to claim and returns None.
    """
    with running(str(job_id)):
        job = job_claim(job_id=job_id, worker=worker_id())
        if job is None:
            logger.debug("Job %s is not claimable; message ignored.", job_id)
            return None
        with job_observed(job):
            logger.debug("Job %s claimed: %s attempt %d.", job.id, job.pipeline, job.attempts)
            started = time.monotonic()
            try:
                outcome = run_stages(job)
            except DatabaseError:
                # Not the job's fault: it stays held, and the heartbeat hands it back once the database answers.
                logger.exception("Job %s stopped by a database error; it will be handed back.", job.id)
                raise
            except Exception as exc:  # a failure of the run path itself, not of a stage
                logger.exception("Job %s crashed outside its stages.", job.id)
                outcome = Failed([], f"{type(exc).__name__}: {exc}")
            status = record_outcome(job, outcome)
            duration_ms = round((time.monotonic() - started) * 1000)
            run_observed(job, status, duration_ms)
            logger.info(
                "Job %s %s: %s attempt %d in %d ms.",
                job.id,
                status or "lost",
                job.pipeline,
                job.attempts,
                duration_ms,
                extra={"duration_ms": duration_ms},
            )
            return status


def run_stages(job: ClaimedJob) -> Completed | Failed | Cancelled | HandedBack | Lost:
    """Run the stages of the job's config snapshot, resuming after the ones an earlier attempt finished.

    Each stage gets the previous stage's output (the job's input for the
    first) and every earlier output by stage name.

    A finished stage's run is its checkpoint, written by one statement that
    also reads back whether the job is being cancelled. After an idempotent
    stage (see pipelines.registry) the write waits for the job's next one,
    unless JOB_CHECKPOINT_INTERVAL_MS has passed since the last: a pipeline of
    quick idempotent stages writes all its runs with its completion. A stage
    that runs on writes the waiting runs at its first cancellation check (0.5 s
    in), so a worker that dies in the middle of it still resumes there; one
    that dies sooner costs running the quick stages again.
    """
    stages = job.stages
    history = _history(job) if job.attempts > 1 else _History()
    progress = _Progress(job, len(stages))
    checkpoints = _Checkpoints(job)
    cancellation = _CancellationCheck(job, checkpoints, progress)
    outputs: dict[str, Any] = {}
    previous: Any = job.input_data
    for index, spec in enumerate(stages):
        if index in history.done:
            outputs[spec["name"]] = previous = history.done[index]
            continue
        record = StageRecord(
            index=index,
            name=spec["name"],
            stage_type=spec["type"],
            attempt=history.runs.get(index, 0) + 1,
            job_attempt=job.attempts,
            started_at=timezone.now(),
        )
        context = StageContext(
            job_id=str(job.id),
            input=job.input_data,
            previous=previous,
            outputs=dict(outputs),
            params=spec.get("params") or {},
            report_progress=progress.stage_reporter(index),
            is_cancelled=cancellation.restart(index),
        )
        retries = spec.get("retries", 0)
        stage_attempt = history.failures.get(index, 0) + 1
        pending = checkpoints.pending
        pending.append(record)  # the running stage's run comes last
        try:
            stage_type = get_stage_type(spec["type"])
            output = run_stage(stage_type, context, timeout_s=spec.get("timeout_s"))
        except StageCancelled:
            record.finish(StageRunStatus.CANCELLED)
            return Cancelled(pending)
        except JobHandBack:
            record.finish(StageRunStatus.FAILED, error=JobHandBack("interrupted: the worker is shutting down"))
            return HandedBack(pending)
        except (StageTimeout, TimeLimitExceeded) as exc:
            limit = spec.get("timeout_s") if isinstance(exc, StageTimeout) else settings.JOB_TIME_LIMIT_SECONDS
            error = StageTimeout(f"exceeded its timeout of {limit:g} s")
            record.finish(StageRunStatus.FAILED, error=error)
            return _stage_failed(job, pending, error, stage_attempt, retries)
        except UnknownStageType as exc:
            record.finish(StageRunStatus.FAILED, error=exc)
            return Failed(pending, f"Stage {spec['name']!r}: unknown stage type {exc}.")
        except Exception as exc:
            record.finish(StageRunStatus.FAILED, error=exc)
            return _stage_failed(job, pending, exc, stage_attempt, retries)
        is_last = index + 1 == len(stages)
        keep = not is_last or job.debug_mode  # the last output is the result: stored once
        record.finish(StageRunStatus.COMPLETED, output=output if keep else None)
        if is_last:
            return Completed(pending, output)
        outputs[spec["name"]] = previous = output
        if stage_type.idempotent and not checkpoints.due():
            continue  # its run is written with the job's next write
        status = checkpoints.write(len(pending), progress.percent(index + 1, 0.0))
        if status is None:
            return Lost()
        if status == JobStatus.CANCELLING:
            return Cancelled()
    raise RuntimeError("A pipeline has at least one stage.")


def _stage_failed(job: ClaimedJob, records: list[StageRecord], error: BaseException, attempt: int, retries: int):
    """A failed stage (the last of `records`): retryable while it has retries left, the error may pass, and the job
    has attempts left."""
    retryable = getattr(error, "retryable", True) and attempt <= retries and job.attempts < job.max_attempts
    message = f"Stage {records[-1].name!r} failed (attempt {attempt} of {retries + 1}): {describe(error)}"
    if getattr(error, "retryable", True) and attempt <= retries and not retryable:
        message += f"; the job's {job.max_attempts} attempts are spent"
    return Failed(records, message, retryable=retryable)


def record_outcome(job: ClaimedJob, outcome) -> str | None:
    """Write how the run ended; return the job's new status (None if it was no longer this worker's)."""
    if isinstance(outcome, Completed):
        return job_complete(job=job, records=outcome.records, output=outcome.output)
    if isinstance(outcome, Failed):
        if outcome.retryable:
            return job_schedule_retry(job=job, records=outcome.records, error=outcome.error)
        return job_fail(job=job, records=outcome.records, error=outcome.error)
    if isinstance(outcome, Cancelled):
        return job_mark_cancelled(job=job, records=outcome.records)
    if isinstance(outcome, HandedBack):
        return job_hand_back(job=job, records=outcome.records)
    logger.warning("Job %s was taken from this worker while it ran; its outcome is dropped.", job.id)
    return None


# -- what the run reads --------------------------------------------------------------


@dataclass
class _History:
    """Earlier attempts' stage runs: finished outputs to resume from, and run counts for numbering."""

    done: dict[int, Any] = field(default_factory=dict)
    runs: dict[int, int] = field(default_factory=dict)
    failures: dict[int, int] = field(default_factory=dict)


def _history(job: ClaimedJob) -> _History:
    history = _History()
    completed: dict[int, Any] = {}
    rows = StageRun.objects.filter(job_id=job.id).values_list("index", "status", "started_at", "output")
    for index, status, started_at, output in rows:
        history.runs[index] = history.runs.get(index, 0) + 1
        if job.checkpoints_since and started_at < job.checkpoints_since:
            continue  # before a retry from the start: not reused, not counted as failures
        if status == StageRunStatus.COMPLETED:
            completed[index] = output
        elif status == StageRunStatus.FAILED:
            history.failures[index] = history.failures.get(index, 0) + 1
    for index in range(len(job.stages) - 1):  # the last stage's output is the result, never a checkpoint
        if index not in completed:
            break
        history.done[index] = completed[index]
    return history


class _Checkpoints:
    """The runs of a job's stages not written yet (the running stage's last), and when the job last wrote them."""

    def __init__(self, job: ClaimedJob):
        self.job = job
        self.pending: list[StageRecord] = []
        self.interval = settings.JOB_CHECKPOINT_INTERVAL_MS / 1000
        self.last_write = time.monotonic()

    def due(self) -> bool:
        return time.monotonic() - self.last_write >= self.interval

    def write(self, count: int, progress: float) -> str | None:
        """Write the first `count` pending runs with the job's progress; the job's status, None if it was lost."""
        records, self.pending[:count] = self.pending[:count], []
        status = job_checkpoint(job=self.job, records=records, progress=progress)
        self.last_write = time.monotonic()
        return status


class _CancellationCheck:
    """Tells a stage whether its job is being cancelled; the database is asked at most every 0.5 s.

    Only stages that ask (long, cooperative ones) or run isolated cost a query,
    and not before they have run for 0.5 s; between stages the checkpoint
    statement reads the status anyway. When earlier stages' runs still wait
    to be written, the check writes them, and the same statement reads the
    status.
    """

    MIN_INTERVAL = 0.5

    def __init__(self, job: ClaimedJob, checkpoints: _Checkpoints, progress: _Progress):
        self.job = job
        self.checkpoints = checkpoints
        self.progress = progress
        self.index = 0
        self.cancelled = False
        self.last_check = time.monotonic()

    def restart(self, index: int) -> _CancellationCheck:
        self.index = index
        self.last_check = time.monotonic()
        return self

    def __call__(self) -> bool:
        now = time.monotonic()
        if not self.cancelled and now - self.last_check >= self.MIN_INTERVAL:
            self.last_check = now
            waiting = len(self.checkpoints.pending) - 1  # all but the running stage's
            if waiting > 0:
                status = self.checkpoints.write(waiting, self.progress.percent(self.index, 0.0))
                self.cancelled = status != JobStatus.PROCESSING  # cancelling, or taken from this worker
            else:
                self.cancelled = Job.objects.filter(pk=self.job.id, status=JobStatus.CANCELLING).exists()
        return self.cancelled


class _Progress:
    """A job's progress: stages done out of total plus the running stage's own fraction.

    Stage boundaries write it inside the checkpoint statement; a stage's own
    reports are written at most twice a second.
    """

    MIN_INTERVAL = 0.5

    def __init__(self, job: ClaimedJob, total: int):
        self.job = job
        self.total = max(total, 1)
        self.last_write = time.monotonic()

    def percent(self, stages_done: int, fraction: float) -> float:
        return round(100 * (stages_done + max(0.0, min(float(fraction), 1.0))) / self.total, 1)

    def stage_reporter(self, index: int):
        def report(fraction: float) -> None:
            now = time.monotonic()
            if now - self.last_write >= self.MIN_INTERVAL:
                self.last_write = now
                Job.objects.filter(pk=self.job.id).update(progress=self.percent(index, fraction))

        return report


# -- transitions -----------------------------------------------------------------------


def _fast_sql() -> bool:
    """Whether transitions use the single-statement PostgreSQL forms."""
    return connection.vendor == "postgresql" and settings.JOB_RUN_SINGLE_STATEMENT


def _execute_one(sql: str, params: dict[str, Any]) -> tuple | None:
    """Run one of the run path's statements with its parameters sent apart (server-side binding); its first row.

    Django's psycopg cursors write every value into the statement's text, so
    no two statements look alike; sent apart, the run path's few statements
    repeat exactly and psycopg prepares them on the server after
    DATABASE_PREPARE_THRESHOLD runs: PostgreSQL plans each once per
    connection, and nothing is quoted in Python. The psycopg cursor is made
    once per connection and reused (a new one copies the connection's
    adapters); it goes through Django's cursor wrapper, so errors, debugging
    and instrumentation see it as usual.
    """
    db = connections[DEFAULT_DB_ALIAS]
    db.ensure_connection()
    raw = db.connection
    cursor = db.__dict__.get("_jobsite_run_cursor")
    if cursor is None or cursor.closed or cursor.connection is not raw:
        import psycopg

        cursor = db._jobsite_run_cursor = psycopg.Cursor(raw)
    wrapped = db._prepare_cursor(cursor)
    wrapped.execute(sql, params)
    return wrapped.fetchone()


CLAIMABLE = "(status IN ('pending', 'queued') OR (status IN ('scheduled', 'retrying') AND run_at <= %(now)s))"

# Statements here are assembled from this module's own names; every value is a parameter.
CLAIM_SQL = f"""
WITH j AS (
    UPDATE jobs_job
       SET status = 'processing', locked_by = %(worker)s, locked_at = %(now)s, heartbeat_at = %(now)s,
           started_at = COALESCE(started_at, %(now)s), attempts = attempts + 1, updated_at = %(now)s,
           queued_at = CASE WHEN status IN ('scheduled', 'retrying') OR queued_at IS NULL
                            THEN %(now)s ELSE queued_at END
     WHERE id = %(id)s AND {CLAIMABLE}
 RETURNING id, pipeline_id, pipeline_version, pipeline_config, input_data, attempts, max_attempts,
           priority, checkpoints_since, started_at, debug_mode, webhook_url, request_id, traceparent,
           GREATEST(created_at, run_at) AS ready_at, user_id
), event AS (
    INSERT INTO jobs_jobevent (id, job_id, type, data, notify, created_at)
    SELECT %(event_id)s, j.id, 'job.started', jsonb_build_object('attempt', j.attempts, 'worker', %(worker)s::text),
           {notify_sql(JobEventType.STARTED)}, %(now)s
      FROM j
 RETURNING notify
)
SELECT j.id, p.name, j.pipeline_version, j.pipeline_config, j.input_data, j.attempts, j.max_attempts, j.priority,
       j.checkpoints_since, j.started_at, j.debug_mode, j.webhook_url, j.request_id, j.user_id, j.traceparent,
       j.ready_at,
       (SELECT notify FROM event)
  FROM j JOIN pipelines_pipeline p ON p.id = j.pipeline_id
"""

CLAIM_FIELDS = (
    "id",
    "pipeline__name",
    "pipeline_version",
    "pipeline_config",
    "input_data",
    "attempts",
    "max_attempts",
    "priority",
    "checkpoints_since",
    "started_at",
    "debug_mode",
    "webhook_url",
    "request_id",
    "user_id",
    "traceparent",
    Greatest("created_at", Coalesce("run_at", "created_at")),
)


def job_claim(*, job_id: str, worker: str) -> ClaimedJob | None:
    """Move a claimable job to `processing` for `worker` and return what its run needs, or None.

    Claimable: `queued`, `pending` (its message came before the mark that it
    was sent), or `scheduled`/`retrying` whose `run_at` has come. Only one
    worker can claim a job: the update is conditional, and a second claim
    waits for the first's row lock, then finds the job taken. It must not skip
    a locked row instead: the lock may be the submitter's own brief update
    (marking the job sent), and a skipped message would strand the job.
    `attempts` counts the claims.
    """
    now = timezone.now()
    if _fast_sql():
        event_id = uuid.uuid4()
        params = {"id": job_id, "worker": worker, "now": now, "event_id": event_id}
        row = _execute_one(CLAIM_SQL, params)
        if row is None:
            return None
        *row, notify = row
        row[3], row[4] = json.loads(row[3]), json.loads(row[4])
        if notify:
            dispatch_after_commit([event_id])
    else:
        row = _claim_orm(job_id, worker, now)
        if row is None:
            return None
    return ClaimedJob(*row, worker=worker)


def _claim_orm(job_id: str, worker: str, now: datetime) -> list | None:
    claimable = Q(status__in=[JobStatus.PENDING, JobStatus.QUEUED]) | Q(
        status__in=[JobStatus.SCHEDULED, JobStatus.RETRYING], run_at__lte=now
    )
    with transaction.atomic():
        claimed = Job.objects.filter(claimable, pk=job_id).update(
            status=JobStatus.PROCESSING,
            locked_by=worker,
            locked_at=now,
            heartbeat_at=now,
            started_at=Coalesce("started_at", Value(now)),
            attempts=F("attempts") + 1,
            updated_at=now,
            queued_at=Case(
                When(Q(status__in=[JobStatus.SCHEDULED, JobStatus.RETRYING]) | Q(queued_at__isnull=True), then=now),
                default=F("queued_at"),
            ),
        )
        if not claimed:
            return None
        row = list(Job.objects.filter(pk=job_id).values_list(*CLAIM_FIELDS).get())
        job_event_record(
            job_id=job_id,
            event_type=JobEventType.STARTED,
            at=now,
            webhook_url=row[11],
            user_id=row[13],
            data={"attempt": row[5], "worker": worker},
        )
    return row


@dataclass
class _Result:
    """A completed job's result row: inline JSON, or a file above RESULT_INLINE_MAX_BYTES."""

    output: Any
    encoded: str
    file_name: str | None
    checksum: str
    size: int

    @classmethod
    def of(cls, job: ClaimedJob, output: Any) -> _Result:
        encoded = json.dumps(output, separators=(",", ":"))
        data = encoded.encode()
        file_name = None
        if len(data) > settings.RESULT_INLINE_MAX_BYTES:
            file_name = default_storage.save(f"results/{job.id}.json", ContentFile(data))
        return cls(output, encoded, file_name, hashlib.sha256(data).hexdigest(), len(data))


# A transition: the guarded UPDATE of the job and the rows that go with it, in one statement on PostgreSQL.
_STAGE_RUN_COLUMNS = (
    "job_id",
    '"index"',
    "name",
    "stage_type",
    "status",
    "attempt",
    "job_attempt",
    "started_at",
    "finished_at",
    "duration_ms",
    "output",
    "error",
    "traceback",
)


def _transition(
    job: ClaimedJob,
    *,
    from_statuses: list[str],
    changes: dict[str, Any],
    records: Sequence[StageRecord] = (),
    result: _Result | None = None,
    event: tuple[str, dict] | None = None,
    now: datetime,
) -> tuple[bool, str | None]:
    """Apply `changes` to the job if this worker holds it in one of `from_statuses`, with its rows.

    Returns whether it applied, and the job's status after the change.
    `changes` values are plain values, or `F()` expressions written as
    `("sql", orm_expression)` pairs.
    """
    for record in records:  # every stage run is written once, through here
        stage_observed(job, record)
        logger.debug("Job %s stage %r %s in %d ms.", job.id, record.name, record.status, record.duration_ms)
    if _fast_sql():
        return _transition_sql(job, from_statuses, changes, records, result, event, now)
    with transaction.atomic():
        orm_changes = {k: (v[1] if isinstance(v, tuple) else v) for k, v in changes.items()}
        held = Job.objects.filter(pk=job.id, locked_by=job.worker, status__in=from_statuses)
        if not held.update(**orm_changes):
            return False, None
        for record in records:
            StageRun.objects.create(job_id=job.id, **_record_fields(record))
        if result is not None:
            JobResult.objects.update_or_create(job_id=job.id, defaults=_result_fields(job, result, now))
        if event is not None:
            job_event_record(
                job_id=job.id,
                event_type=event[0],
                at=now,
                webhook_url=job.webhook_url,
                user_id=job.user_id,
                data=event[1],
            )
        status = changes.get("status") or Job.objects.filter(pk=job.id).values_list("status", flat=True).get()
    return True, status


def _transition_sql(job, from_statuses, changes, records, result, event, now) -> tuple[bool, str | None]:
    params: dict[str, Any] = {"id": job.id, "worker": job.worker, "now": now}
    expressions = []
    for column, value in changes.items():
        if isinstance(value, tuple):
            expressions.append((column, value[0]))
        else:
            expressions.append((column, None))
            params[f"c_{column}"] = value
    if len(records) == 1:
        fields = _record_fields(records[0])
        fields["output"] = None if records[0].output is None else json.dumps(records[0].output)
        params.update((f"r_{name}", value) for name, value in fields.items())
    elif records:  # several runs: one JSON parameter, whatever their number
        params["runs"] = json.dumps([_record_json(record) for record in records])
    if result is not None:
        fields = _result_fields(job, result, now)
        fields["result"] = None if result.file_name else result.encoded
        fields["metadata"] = json.dumps(fields["metadata"])
        params.update((f"x_{name}", value) for name, value in fields.items())
    if event is not None:
        params.update(event_id=uuid.uuid4(), event_data=json.dumps(event[1]))
    sql = _transition_statement(
        tuple(expressions), tuple(from_statuses), min(len(records), 2), result is not None, event and event[0]
    )
    row = _execute_one(sql, params)
    if row is None:
        return False, None
    if row[1]:
        dispatch_after_commit([params["event_id"]])
    return True, row[0]


_RECORD_FIELDS = ("index", "name", "stage_type", "status", "attempt", "job_attempt", "started_at", "finished_at",
                  "duration_ms", "output", "error", "traceback")  # fmt: skip
# A run's fields in a jsonb_to_recordset() row (several runs in one statement).
_RECORDSET_COLUMNS = ('"index" int, name text, stage_type text, status text, attempt int, job_attempt int, '
                      "started_at timestamptz, finished_at timestamptz, duration_ms bigint, output jsonb, error text, "
                      "traceback text")  # fmt: skip
_RESULT_FIELDS = ("result", "result_file", "content_type", "size_bytes", "checksum", "metadata", "processing_time_ms",
                  "created_at", "expires_at")  # fmt: skip


@functools.lru_cache(maxsize=64)
def _transition_statement(
    expressions: tuple, from_statuses: tuple, n_records: int, with_result: bool, event_type: str | None
) -> str:
    """The text of one transition's statement; a handful of shapes, built once each (and prepared by psycopg).

    `n_records` is 0, 1 (the run's fields as parameters) or 2 (any number of
    runs as one JSON parameter: psycopg caches a statement's parsing only up
    to 50 parameters, so thirteen per run would have it parse a three-stage
    completion's text at every call).
    """
    sets = ", ".join(f"{column} = {sql or f'%(c_{column})s'}" for column, sql in expressions)
    statuses = ", ".join(f"'{status}'" for status in from_statuses)
    parts = [
        f"""j AS (
    UPDATE jobs_job SET {sets}
     WHERE id = %(id)s AND locked_by = %(worker)s AND status IN ({statuses})
 RETURNING id, status, webhook_url, user_id)"""
    ]
    columns = ", ".join(_STAGE_RUN_COLUMNS)
    if n_records == 1:
        values = ", ".join(f"%(r_{f})s" + ("::jsonb" if f == "output" else "") for f in _RECORD_FIELDS)
        parts.append(f"run AS (INSERT INTO jobs_stagerun ({columns}) SELECT id, {values} FROM j)")
    elif n_records > 1:
        values = ", ".join(f'r."{f}"' for f in _RECORD_FIELDS)
        parts.append(
            f"run AS (INSERT INTO jobs_stagerun ({columns}) SELECT j.id, {values} "
            f"FROM j, jsonb_to_recordset(%(runs)s::jsonb) AS r({_RECORDSET_COLUMNS}))"
        )
    if with_result:
        columns = ", ".join(_RESULT_FIELDS)
        values = ", ".join(f"%(x_{f})s::jsonb" if f in ("result", "metadata") else f"%(x_{f})s" for f in _RESULT_FIELDS)
        updates = ", ".join(f"{f} = EXCLUDED.{f}" for f in _RESULT_FIELDS)
        parts.append(
            f"result AS (INSERT INTO jobs_jobresult (job_id, {columns}) SELECT id, {values} FROM j "
            f"ON CONFLICT (job_id) DO UPDATE SET {updates})"
        )
    notified = "FALSE"
    if event_type is not None:
        parts.append(
            "event AS (INSERT INTO jobs_jobevent (id, job_id, type, data, notify, created_at) "
            f"SELECT %(event_id)s, id, '{event_type}', %(event_data)s::jsonb, {notify_sql(event_type)}, %(now)s FROM j "
            "RETURNING notify)"
        )
        notified = "(SELECT notify FROM event)"
    return "WITH " + ",\n".join(parts) + f"\nSELECT status, {notified} FROM j"


def _record_fields(record: StageRecord) -> dict[str, Any]:
    return {
        "index": record.index,
        "name": record.name,
        "stage_type": record.stage_type,
        "status": record.status,
        "attempt": record.attempt,
        "job_attempt": record.job_attempt,
        "started_at": record.started_at,
        "finished_at": record.finished_at,
        "duration_ms": record.duration_ms,
        "output": record.output,
        "error": record.error,
        "traceback": record.traceback,
    }


def _record_json(record: StageRecord) -> dict[str, Any]:
    fields = _record_fields(record)
    fields["started_at"] = record.started_at.isoformat()
    fields["finished_at"] = record.finished_at and record.finished_at.isoformat()
    return fields


def _result_fields(job: ClaimedJob, result: _Result, now: datetime) -> dict[str, Any]:
    return {
        "result": None if result.file_name else result.output,
        "result_file": result.file_name,
        "content_type": "application/json",
        "size_bytes": result.size,
        "checksum": result.checksum,
        "metadata": {"pipeline": job.pipeline, "pipeline_version": job.pipeline_version},
        "processing_time_ms": _elapsed_ms(job.started_at, now),
        "created_at": now,
        "expires_at": now + timedelta(days=settings.RESULT_TTL_DAYS),
    }


def _finish_changes(job: ClaimedJob, status: str, now: datetime, **extra) -> dict[str, Any]:
    return {
        "status": status,
        "completed_at": now,
        "duration_ms": _elapsed_ms(job.started_at, now),
        "locked_at": None,
        "updated_at": now,
        **extra,
    }


def job_checkpoint(*, job: ClaimedJob, records: list[StageRecord], progress: float) -> str | None:
    """Save finished (not last) stages' runs and the job's progress; return the job's status, None if lost."""
    now = timezone.now()
    applied, status = _transition(
        job,
        from_statuses=RUNNING_STATUSES,
        changes={"progress": progress, "heartbeat_at": now},
        records=records,
        now=now,
    )
    return status if applied else None


def job_complete(*, job: ClaimedJob, records: list[StageRecord], output: Any) -> str | None:
    """Store the result and mark the job `completed`, if this worker still holds it."""
    now = timezone.now()
    result = _Result.of(job, output)
    applied, _ = _transition(
        job,
        from_statuses=RUNNING_STATUSES,
        changes=_finish_changes(job, JobStatus.COMPLETED, now, progress=100.0, error_message=""),
        records=records,
        result=result,
        event=(JobEventType.COMPLETED, {"attempt": job.attempts, "duration_ms": _elapsed_ms(job.started_at, now)}),
        now=now,
    )
    if not applied:
        if result.file_name:
            default_storage.delete(result.file_name)
        return None
    return JobStatus.COMPLETED


def stage_retry_delay_ms(attempt: int) -> int:
    """Exponential backoff with jitter for a stage's `attempt`-th retry.

    base * 2^(attempt-1), capped, then a random point in its upper half, so
    that jobs failing together do not come back together.
    """
    ceiling = min(settings.STAGE_RETRY_BACKOFF_MAX_MS, settings.STAGE_RETRY_BACKOFF_BASE_MS * 2 ** (attempt - 1))
    return int(ceiling * random.uniform(0.5, 1.0))


def job_schedule_retry(*, job: ClaimedJob, records: list[StageRecord], error: str) -> str | None:
    """Put a job whose stage failed with retries left back on the queue after a backoff.

    The job waits as `retrying` with `run_at` set; its message is sent with
    the delay, so no worker thread sleeps through the backoff. The next run
    resumes at the failed stage. Cancelled meanwhile, it is cancelled instead.
    """
    from .services import send_job

    record = records[-1]  # the failed stage
    delay_ms = stage_retry_delay_ms(record.attempt)
    now = timezone.now()
    run_at = now + timedelta(milliseconds=delay_ms)
    applied, _ = _transition(
        job,
        from_statuses=[JobStatus.PROCESSING],
        changes={
            "status": JobStatus.RETRYING,
            "run_at": run_at,
            "error_message": error[:ERROR_MAX_CHARS],
            "locked_at": None,
            "updated_at": now,
        },
        records=records,
        event=(
            JobEventType.RETRYING,
            {
                "attempt": job.attempts,
                "stage": record.name,
                "error": error[:ERROR_MAX_CHARS],
                "run_at": run_at.isoformat(),
                "delay_ms": delay_ms,
            },
        ),
        now=now,
    )
    if not applied:
        return job_mark_cancelled(job=job, records=[])
    send_job(job.id, delay_ms=delay_ms, priority=job.priority)
    return JobStatus.RETRYING


def job_fail(*, job: ClaimedJob, records: list[StageRecord], error: str) -> str | None:
    """Mark the job `failed` with its error, if this worker still holds it (`records` end with the failed stage)."""
    now = timezone.now()
    data = {"attempt": job.attempts, "error": error[:ERROR_MAX_CHARS], "duration_ms": _elapsed_ms(job.started_at, now)}
    if records:
        data["stage"] = records[-1].name
    applied, _ = _transition(
        job,
        from_statuses=RUNNING_STATUSES,
        changes=_finish_changes(job, JobStatus.FAILED, now, error_message=error[:ERROR_MAX_CHARS]),
        records=records,
        event=(JobEventType.FAILED, data),
        now=now,
    )
    return JobStatus.FAILED if applied else None


def job_mark_cancelled(*, job: ClaimedJob, records: list[StageRecord]) -> str | None:
    """Finish a job its worker stopped on request (`cancelling` -> `cancelled`)."""
    now = timezone.now()
    applied, _ = _transition(
        job,
        from_statuses=[JobStatus.CANCELLING],
        changes=_finish_changes(job, JobStatus.CANCELLED, now),
        records=records,
        event=(JobEventType.CANCELLED, {"attempt": job.attempts}),
        now=now,
    )
    return JobStatus.CANCELLED if applied else None


def job_hand_back(*, job: ClaimedJob, records: list[StageRecord]) -> str | None:
    """Give a job back to the queue because its worker is shutting down.

    The interrupted attempt does not count against the job's budget:
    `max_attempts` grows by one with it. Another worker resumes the job at the
    interrupted stage. Cancelled meanwhile, it is cancelled instead.
    """
    from .services import job_enqueue

    now = timezone.now()
    applied, _ = _transition(
        job,
        from_statuses=[JobStatus.PROCESSING],
        changes={
            "status": JobStatus.PENDING,
            "max_attempts": ("max_attempts + 1", F("max_attempts") + 1),
            "locked_at": None,
            "updated_at": now,
        },
        records=records,
        now=now,
    )
    if not applied:
        return job_mark_cancelled(job=job, records=[])
    job_enqueue(job_id=job.id)
    logger.info("Job %s handed back: the worker is shutting down.", job.id)
    return JobStatus.PENDING


def _elapsed_ms(start: datetime, end: datetime) -> int:
    return max(0, round((end - start).total_seconds() * 1000))
