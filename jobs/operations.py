"""Operator actions on one job beyond cancel and retry: requeue a stuck job, delete a job.

Both are services: each owns its transaction and writes its audit row in it.
"""

from __future__ import annotations

import uuid

from django.db import transaction
from django.utils import timezone

from audit.services import audit_record

from .models import Job, JobResult
from .recovery import HELD_FIELDS, _recovery_action, _resend, _take_back
from .services import WAITING_STATUSES, JobStateError
from .workers import RUNNING_STATUSES


def job_requeue(*, job_id: uuid.UUID, reason: str = "requeued by an operator") -> str:
    """Put a stuck job back on track now, as recovery would; return what was done.

    A job held by a worker (`processing`) goes back to the queue and resumes at
    its stage, or fails if its attempts are spent; a `cancelling` one is
    cancelled (recovery's rule for an abandoned job, `jobs.recovery`). A waiting
    job (`pending`, `queued`, `scheduled`, `retrying`) has its broker message
    sent again. Returns `requeue`, `fail`, `cancel` or `resend`; raises
    JobStateError for a finished job, or when a concurrent change won.
    """
    job = Job.objects.only(*HELD_FIELDS, "queued_at", "run_at", "priority").get(pk=job_id)
    if job.status in RUNNING_STATUSES:
        action, full_reason = _recovery_action(job, reason)
        if not _take_back(job, action, full_reason, timezone.now()):
            raise JobStateError(Job.objects.get(pk=job_id), "requeued")
        return action
    if job.status in WAITING_STATUSES:
        if not _resend(job, reason):
            raise JobStateError(Job.objects.get(pk=job_id), "requeued")
        return "resend"
    raise JobStateError(job, "requeued")


def job_delete(*, job_id: uuid.UUID) -> None:
    """Delete a job with its stage runs, events and result (its result file too), and audit it.

    A job a worker holds (`processing`, `cancelling`) cannot be deleted: cancel it first.
    """
    with transaction.atomic():
        job = Job.objects.select_for_update().only("id", "status", "pipeline_id").get(pk=job_id)
        if job.status in RUNNING_STATUSES:
            raise JobStateError(job, "deleted")
        result_file = (
            JobResult.objects.filter(job_id=job_id)
            .exclude(result_file="")
            .values_list("result_file", flat=True)
            .first()
        )
        status = job.status
        job.delete()
        audit_record(app="jobs", entity="job", verb="delete", resource_id=job_id, details={"status": status})
        if result_file:
            transaction.on_commit(lambda: JobResult._meta.get_field("result_file").storage.delete(result_file))
