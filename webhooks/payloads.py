"""The body every delivery sends: `{"type", "timestamp", "data"}`.

`data` is the job's summary as the event left it (status, error and result
link follow the event, the rest is the job row when the delivery is made),
the same shape for subscriptions and for a job's own callback.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.urls import reverse

from jobs.models import Job, JobEvent, JobEventType, JobStatus

# The status a job has right after each event.
EVENT_STATUS = {
    JobEventType.STARTED: JobStatus.PROCESSING,
    JobEventType.RETRYING: JobStatus.RETRYING,
    JobEventType.COMPLETED: JobStatus.COMPLETED,
    JobEventType.FAILED: JobStatus.FAILED,
    JobEventType.CANCELLED: JobStatus.CANCELLED,
}
FINISHED_EVENTS = {JobEventType.COMPLETED, JobEventType.FAILED, JobEventType.CANCELLED}

# What the dispatcher reads of an event and its job (`QuerySet.only` of events): never the job's input.
EVENT_JOB_FIELDS = (
    "id",
    "type",
    "data",
    "created_at",
    "job_id",
    *(
        f"job__{name}"
        for name in (
            "id",
            "pipeline__name",
            "pipeline_version",
            "status",
            "priority",
            "user_id",
            "username",
            "action",
            "attempts",
            "max_attempts",
            "error_message",
            "created_at",
            "started_at",
            "completed_at",
            "duration_ms",
            "webhook_url",
        )
    ),
)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def result_url(job_id) -> str:
    """Where the job's result is fetched, absolute when WEBHOOK_PUBLIC_BASE_URL is set."""
    return settings.WEBHOOK_PUBLIC_BASE_URL + reverse("job-result", kwargs={"pk": job_id})


def event_payload(event: JobEvent, job: Job) -> dict[str, Any]:
    """The payload of a job event: the event's type and time, and the job as the event left it."""
    finished = event.type in FINISHED_EVENTS
    status = EVENT_STATUS.get(event.type) or event.data.get("status") or job.status
    error = event.data.get("error") or (job.error_message if event.type == JobEventType.FAILED else "")
    data = {
        "job_id": str(job.pk),
        "workflow_name": job.pipeline.name,
        "status": status,
        "priority": job.priority,
        "user_id": str(job.user_id) if job.user_id else None,
        "username": job.username or None,
        "action": job.action or None,
        "created_at": _iso(job.created_at),
        "started_at": _iso(job.started_at) if event.type != JobEventType.CREATED else None,
        "completed_at": _iso(job.completed_at) if finished else None,
        "duration_ms": (event.data.get("duration_ms") or job.duration_ms) if finished else None,
        "error_message": error or None,
        "pipeline_version": job.pipeline_version,
        "attempts": 0 if event.type == JobEventType.CREATED else event.data.get("attempt", job.attempts),
        "max_attempts": job.max_attempts,
        "result_url": result_url(job.pk) if event.type == JobEventType.COMPLETED else None,
    }
    return {"type": event.type, "timestamp": _iso(event.created_at), "data": data}


def test_payload(*, subscription_id, at: datetime) -> dict[str, Any]:
    """The payload of `webhook.test`."""
    return {
        "type": "webhook.test",
        "timestamp": _iso(at),
        "data": {"subscription_id": str(subscription_id), "message": "A test event from jobsite."},
    }
