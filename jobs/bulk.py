"""Bulk operations: cancel, retry, requeue or delete every job matching an admin filter, in the background.

The admin records the operation (`BulkOperation`) with a snapshot of its filter
and sends `jobs_bulk_operation`; the actor works through the matching jobs in
chunks of CHUNK_SIZE, by job id, for about STEP_SECONDS, records its progress
and cursor, and sends itself again until none are left. Each job goes through
its own service (`job_cancel`, `job_retry`, `job_requeue`, `job_delete`),
which checks the job's state and writes its audit row, attributed to the
operator who asked. No request ever holds more than a page of jobs.

Running a step twice is harmless: a step leases the operation
(LEASE_SECONDS, renewed per chunk) and continues from the stored cursor; a
message that finds the lease held comes back when it runs out.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import timedelta

import dramatiq
from django.db import transaction
from django.db.models import Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from audit.context import AuditContext, audit_context
from audit.services import audit_record

from . import operations, services
from .dashboard import JobCriteria
from .models import BulkOperation, BulkOperationKind, BulkOperationStatus, Job, JobStatus
from .workers import RUNNING_STATUSES

logger = logging.getLogger(__name__)

CHUNK_SIZE = 500
STEP_SECONDS = 5.0
LEASE_SECONDS = 60
ERRORS_KEPT = 20

# The statuses each kind can act on: other jobs matching the filter are not its business.
APPLICABLE = {
    BulkOperationKind.CANCEL: sorted(services.WAITING_STATUSES | {JobStatus.PROCESSING}),
    BulkOperationKind.RETRY: [JobStatus.FAILED, JobStatus.CANCELLED],
    BulkOperationKind.RETRY_FROM_START: [JobStatus.FAILED, JobStatus.CANCELLED],
    BulkOperationKind.REQUEUE: sorted(services.WAITING_STATUSES | set(RUNNING_STATUSES)),
    BulkOperationKind.DELETE: [s for s in JobStatus.values if s not in RUNNING_STATUSES],
}
FINISHED = [BulkOperationStatus.COMPLETED, BulkOperationStatus.CANCELLED, BulkOperationStatus.FAILED]


def job_act(*, kind: str, job_id: uuid.UUID) -> str:
    """Apply one bulk kind to one job through its service; return the outcome's name.

    Raises JobStateError when the job's state does not allow it and
    Job.DoesNotExist when it is gone.
    """
    if kind == BulkOperationKind.CANCEL:
        return services.job_cancel(job_id=job_id).status
    if kind in (BulkOperationKind.RETRY, BulkOperationKind.RETRY_FROM_START):
        services.job_retry(job_id=job_id, from_start=kind == BulkOperationKind.RETRY_FROM_START)
        return "retried"
    if kind == BulkOperationKind.REQUEUE:
        return operations.job_requeue(job_id=job_id)
    if kind == BulkOperationKind.DELETE:
        operations.job_delete(job_id=job_id)
        return "deleted"
    raise ValueError(f"Unknown bulk operation kind {kind!r}.")


def bulk_operation_start(*, kind: str, criteria: JobCriteria, requested_by) -> BulkOperation:
    """Record an operation over the jobs matching `criteria` now, and start it after commit.

    `criteria.until` is set to now, so jobs created while it runs are left out.
    """
    if kind not in BulkOperationKind.values:
        raise ValueError(f"Unknown bulk operation kind {kind!r}.")
    criteria = criteria.narrowed(until=criteria.until or timezone.now())
    with transaction.atomic():
        operation = BulkOperation.objects.create(
            kind=kind,
            criteria=criteria.to_json(),
            description=criteria.describe()[:500],
            requested_by=requested_by,
        )
        audit_record(
            app="jobs",
            entity="bulk_operation",
            verb="start",
            resource_id=operation.pk,
            details={"kind": kind, "filter": operation.description},
        )
        transaction.on_commit(lambda: jobs_bulk_operation.send(str(operation.pk)))
    return operation


def bulk_operation_stop(*, operation_id: uuid.UUID) -> BulkOperation:
    """Ask a running operation to stop after its current chunk; an operation not started yet stops at once."""
    with transaction.atomic():
        operation = BulkOperation.objects.select_for_update().get(pk=operation_id)
        if operation.is_finished:
            return operation
        operation.stop_requested = True
        fields = ["stop_requested"]
        if operation.status == BulkOperationStatus.QUEUED:
            operation.status, operation.finished_at = BulkOperationStatus.CANCELLED, timezone.now()
            fields += ["status", "finished_at"]
        operation.save(update_fields=fields)
        audit_record(app="jobs", entity="bulk_operation", verb="stop", resource_id=operation.pk)
    return operation


def _candidates(operation: BulkOperation, criteria: JobCriteria):
    jobs = Job.objects.filter(status__in=APPLICABLE[operation.kind])
    return criteria.apply(jobs).order_by("pk")


def _total(jobs, criteria: JobCriteria) -> int:
    if not criteria.error_group:
        return jobs.count()
    return sum(
        1
        for message in jobs.values_list("error_message", flat=True).iterator(chunk_size=2000)
        if criteria.matches(Job(error_message=message))
    )


def _claim(operation_id) -> bool:
    now = timezone.now()
    return bool(
        BulkOperation.objects.filter(
            pk=operation_id, status__in=[BulkOperationStatus.QUEUED, BulkOperationStatus.RUNNING]
        )
        .filter(Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now))
        .update(
            status=BulkOperationStatus.RUNNING,
            lease_expires_at=now + timedelta(seconds=LEASE_SECONDS),
            started_at=Coalesce("started_at", now),
        )
    )


def bulk_operation_step(*, operation_id: uuid.UUID | str, budget_seconds: float = STEP_SECONDS) -> int | None:
    """Work through the operation's next chunks for about `budget_seconds`.

    Returns None when nothing is left to do (finished, stopped, or unknown), 0
    when more chunks remain, or a delay in ms after which to try again when
    another run holds the operation's lease.
    """
    if not _claim(operation_id):
        current = BulkOperation.objects.filter(pk=operation_id).values("status", "lease_expires_at").first()
        if current is None or current["status"] in FINISHED:
            return None
        remaining = (current["lease_expires_at"] - timezone.now()).total_seconds() if current["lease_expires_at"] else 0
        return max(1000, int(remaining * 1000) + 1000)
    operation = BulkOperation.objects.select_related("requested_by").get(pk=operation_id)
    criteria = JobCriteria.from_json(operation.criteria)
    jobs = _candidates(operation, criteria)
    if operation.total is None:
        operation.total = _total(jobs, criteria)
        BulkOperation.objects.filter(pk=operation.pk).update(total=operation.total)
    deadline = time.monotonic() + budget_seconds
    context = AuditContext(source="admin", user=operation.requested_by)
    with audit_context(context):
        while True:
            if BulkOperation.objects.filter(pk=operation.pk, stop_requested=True).exists():
                _finish(operation, BulkOperationStatus.CANCELLED)
                return None
            after = jobs.filter(pk__gt=operation.cursor) if operation.cursor else jobs
            chunk = list(after.only("id", "error_message")[:CHUNK_SIZE])
            if not chunk:
                _finish(operation, BulkOperationStatus.COMPLETED)
                return None
            _run_chunk(operation, criteria, chunk)
            if time.monotonic() >= deadline:
                BulkOperation.objects.filter(pk=operation.pk).update(lease_expires_at=None)
                return 0


def _run_chunk(operation: BulkOperation, criteria: JobCriteria, chunk: list[Job]) -> None:
    summary = operation.summary or {}
    skipped_by_status = summary.setdefault("skipped_by_status", {})
    outcomes = summary.setdefault("outcomes", {})
    errors = summary.setdefault("errors", [])
    for job in chunk:
        if not criteria.matches(job):
            continue
        try:
            outcome = job_act(kind=operation.kind, job_id=job.pk)
        except services.JobStateError as exc:
            operation.skipped += 1
            skipped_by_status[exc.job.status] = skipped_by_status.get(exc.job.status, 0) + 1
        except Job.DoesNotExist:
            operation.skipped += 1
            skipped_by_status["gone"] = skipped_by_status.get("gone", 0) + 1
        except Exception as exc:
            logger.exception("Bulk operation %s: job %s failed.", operation.pk, job.pk)
            operation.failed += 1
            if len(errors) < ERRORS_KEPT:
                errors.append({"job": str(job.pk), "error": f"{type(exc).__name__}: {exc}"[:500]})
        else:
            operation.succeeded += 1
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
        operation.done += 1
    operation.cursor = str(chunk[-1].pk)
    operation.summary = summary
    BulkOperation.objects.filter(pk=operation.pk).update(
        done=operation.done,
        succeeded=operation.succeeded,
        skipped=operation.skipped,
        failed=operation.failed,
        summary=summary,
        cursor=operation.cursor,
        lease_expires_at=timezone.now() + timedelta(seconds=LEASE_SECONDS),
    )


def _finish(operation: BulkOperation, status: str) -> None:
    BulkOperation.objects.filter(pk=operation.pk).update(
        status=status, finished_at=timezone.now(), lease_expires_at=None
    )
    logger.info(
        "Bulk operation %s %s: %d done (%d succeeded, %d skipped, %d failed).",
        operation.pk, status, operation.done, operation.succeeded, operation.skipped, operation.failed,
    )  # fmt: skip


@dramatiq.actor(actor_name="jobs_bulk_operation", queue_name="maintenance", max_retries=5, time_limit=600_000)
def jobs_bulk_operation(operation_id: str) -> None:
    """Run one step of a bulk operation and send the next one; see :func:`bulk_operation_step`."""
    delay = bulk_operation_step(operation_id=operation_id)
    if delay is not None:
        jobs_bulk_operation.send_with_options(args=(operation_id,), delay=delay or None)
