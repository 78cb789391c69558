"""Recovery: finds jobs that nothing will finish and puts them back on track.

Used by `manage.py recover_jobs` and by the periodic `jobs_recover` actor.
Every action is a conditional update inside its own transaction (the job row
locked with SKIP LOCKED where the database has it), so two concurrent runs
never act on the same job twice, and each action writes an audit row naming
its reason.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from audit.services import audit_record

from .events import job_event_record
from .models import Job, JobEventType, JobStatus, StageRun, StageRunStatus, WorkerProcess
from .services import job_enqueue, job_resend
from .workers import RUNNING_STATUSES

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecoveryAction:
    job_id: str
    action: str  # requeue | fail | cancel | resend
    reason: str

    def __str__(self):
        return f"{self.action:<8} {self.job_id}  ({self.reason})"

    def describe(self, *, dry_run: bool) -> str:
        """The action as done, or (dry run) as it would be done."""
        return f"would {self}" if dry_run else str(self)


def _seconds(delta: timedelta) -> str:
    return f"{delta.total_seconds():.0f} s"


def _locked(job_id, **conditions):
    jobs = Job.objects.filter(pk=job_id, **conditions)
    if connection.features.has_select_for_update_skip_locked:
        jobs = jobs.select_for_update(skip_locked=True)
    return jobs.first()


HELD_FIELDS = (
    "id",
    "status",
    "locked_by",
    "heartbeat_at",
    "locked_at",
    "updated_at",
    "attempts",
    "max_attempts",
    "started_at",
    "webhook_url",
)


def _owner(job: Job) -> str:
    """The worker process holding the job (`locked_by` is `<process id>/<thread>`)."""
    return job.locked_by.split("/")[0]


def _recovery_action(job: Job, reason: str, *, on_stuck: str = "requeue") -> tuple[str, str]:
    """What to do with a held job nothing will finish, and the reason to record."""
    if job.status == JobStatus.CANCELLING:
        return "cancel", reason
    if job.attempts >= job.max_attempts:
        return "fail", f"{reason}; {job.attempts} of {job.max_attempts} attempts spent"
    return ("fail" if on_stuck == "fail" else "requeue"), reason


def _abandoned_reason(job: Job, now: datetime, stuck_timeout: timedelta, workers: dict) -> str | None:
    """Why nothing will finish this held job, or None while it looks alive."""
    beat = job.heartbeat_at or job.locked_at or job.updated_at
    age = now - beat
    worker = workers.get(_owner(job))
    dead_after = timedelta(seconds=settings.WORKER_DEAD_AFTER_SECONDS)
    if worker is not None and worker.stopped_at and worker.stopped_at < now - timedelta(seconds=1):
        return f"worker {worker.worker_id} stopped"
    if worker is not None and now - worker.last_seen_at > dead_after:
        return f"worker gone: {worker.worker_id} silent for {_seconds(now - worker.last_seen_at)}"
    if age > stuck_timeout:
        return f"heartbeat {_seconds(age)} old"
    if worker is None and age > dead_after:
        # Workers register before taking work and beat for their jobs: a holder never
        # heard of, silent as long as a dead worker, is gone.
        return f"worker gone: {_owner(job)} unknown, heartbeat {_seconds(age)} old"
    return None


def jobs_recover(
    *,
    stuck_timeout: timedelta | None = None,
    orphan_timeout: timedelta | None = None,
    on_stuck: str = "requeue",
    dry_run: bool = False,
    now: datetime | None = None,
) -> list[RecoveryAction]:
    """Recover abandoned, orphaned and overdue jobs; return what was (or, dry, would be) done.

    - `processing`/`cancelling` jobs whose worker is gone or whose heartbeat is
      older than `stuck_timeout`: a cancelling one is cancelled; a processing
      one is requeued (attempts kept; it resumes at its stage) or failed once
      its attempts are spent, or always with `on_stuck="fail"`.
    - `pending` jobs the broker never got (older than JOB_OUTBOX_RESEND_SECONDS)
      and `queued` jobs not started within `orphan_timeout` are re-sent.
    - `scheduled`/`retrying` jobs past their `run_at` by more than
      WORKER_DEAD_AFTER_SECONDS are re-sent (the claim releases them).
    """
    now = now or timezone.now()
    stuck_timeout = stuck_timeout or timedelta(minutes=settings.JOB_STUCK_TIMEOUT_MINUTES)
    orphan_timeout = orphan_timeout or timedelta(minutes=settings.JOB_ORPHAN_TIMEOUT_MINUTES)
    actions: list[RecoveryAction] = []

    held = list(Job.objects.filter(status__in=RUNNING_STATUSES).only(*HELD_FIELDS))
    owners = {_owner(job) for job in held}
    workers = {w.worker_id: w for w in WorkerProcess.objects.filter(worker_id__in=owners)}
    for job in held:
        reason = _abandoned_reason(job, now, stuck_timeout, workers)
        if reason is None:
            continue
        action, reason = _recovery_action(job, reason, on_stuck=on_stuck)
        if dry_run or _take_back(job, action, reason, now):
            actions.append(RecoveryAction(str(job.pk), action, reason))

    outbox_age = now - timedelta(seconds=settings.JOB_OUTBOX_RESEND_SECONDS)
    grace = timedelta(seconds=settings.WORKER_DEAD_AFTER_SECONDS)
    waiting = Job.objects.filter(
        Q(status=JobStatus.PENDING, updated_at__lt=outbox_age)
        | Q(status=JobStatus.QUEUED, queued_at__lt=now - orphan_timeout)
        | Q(
            Q(queued_at__isnull=True) | Q(queued_at__lt=now - grace),
            status__in=[JobStatus.SCHEDULED, JobStatus.RETRYING],
            run_at__lt=now - grace,
        )
    ).only("id", "status", "queued_at", "updated_at", "run_at", "priority")
    for job in waiting.iterator():
        if job.status == JobStatus.PENDING:
            reason = f"never handed to the broker ({_seconds(now - job.updated_at)} pending)"
        elif job.status == JobStatus.QUEUED:
            reason = f"never picked up ({_seconds(now - job.queued_at)} queued)"
        else:
            reason = f"{job.status} past its run_at by {_seconds(now - job.run_at)}"
        if dry_run or _resend(job, reason):
            actions.append(RecoveryAction(str(job.pk), "resend", reason))
    for action in actions:
        logger.info("recovery: %s", action.describe(dry_run=dry_run))
    return actions


def _take_back(job: Job, action: str, reason: str, now: datetime) -> bool:
    with transaction.atomic():
        current = _locked(job.pk, status=job.status, locked_by=job.locked_by)
        if current is None:
            return False  # finished, or taken by a concurrent run, meanwhile
        StageRun.objects.filter(job=current, status=StageRunStatus.RUNNING).update(
            status=StageRunStatus.FAILED, error=f"Interrupted: {reason}", finished_at=now
        )
        current.locked_at = None
        if action == "cancel":
            current.status, current.completed_at = JobStatus.CANCELLED, now
            job_event_record(
                job_id=current.pk,
                event_type=JobEventType.CANCELLED,
                at=now,
                webhook_url=job.webhook_url,
                user_id=current.user_id,
            )
        elif action == "fail":
            current.status, current.completed_at = JobStatus.FAILED, now
            current.error_message = f"Worker lost: {reason}"
            job_event_record(
                job_id=current.pk,
                event_type=JobEventType.FAILED,
                at=now,
                webhook_url=job.webhook_url,
                user_id=current.user_id,
                data={"attempt": job.attempts, "error": current.error_message},
            )
        else:
            current.status = JobStatus.PENDING
            transaction.on_commit(lambda: job_enqueue(job_id=current.pk))
        if current.completed_at and job.started_at:
            current.duration_ms = max(0, round((now - job.started_at).total_seconds() * 1000))
        current.save(
            update_fields=["status", "locked_at", "completed_at", "duration_ms", "error_message", "updated_at"]
        )
        audit_record(app="jobs", entity="job", verb=action, resource_id=current.pk, details={"reason": reason})
    return True


def _resend(job: Job, reason: str) -> bool:
    # job_enqueue only sends from pending, job_resend only if queued_at is unchanged:
    # a concurrent run does not send the same job again.
    sent = job_enqueue(job_id=job.pk) if job.status == JobStatus.PENDING else job_resend(job=job)
    if sent:
        with transaction.atomic():
            audit_record(app="jobs", entity="job", verb="resend", resource_id=job.pk, details={"reason": reason})
    return sent


def jobs_reclaim_dropped(*, process: str, running: set[str], claimed_before: datetime) -> list[RecoveryAction]:
    """Hand back jobs that `process` holds but none of its threads runs any more.

    That happens when an error outside the job (the database going away) cut
    a run short: the job would otherwise stay `processing` under a live
    worker. Called by the worker's heartbeat, with `running` read after
    `claimed_before`: a job claimed since is not judged by that older list
    (a thread counts a job as running before it claims it, so every job
    claimed before `claimed_before` and still run is in `running`).
    """
    now = timezone.now()
    dropped = (
        Job.objects.filter(
            locked_by__startswith=f"{process}/", status__in=RUNNING_STATUSES, locked_at__lt=claimed_before
        )
        .exclude(pk__in=running)
        .only(*HELD_FIELDS)
    )
    actions = []
    for job in dropped:
        action, reason = _recovery_action(job, "its run was cut short by an error outside the job")
        if _take_back(job, action, reason, now):
            actions.append(RecoveryAction(str(job.pk), action, reason))
            logger.warning("recovery: %s", actions[-1])
    return actions
