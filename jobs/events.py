"""Job events: the row every change of a job's state writes, in the same transaction as the change.

The run path (jobs.run) folds the event's INSERT into the statement that
changes the job; the other services write it with :func:`job_event_record`.
An event is `notify` when someone listens at write time: the job's own
`webhook_url` for a terminal event. Once the change has committed, events
someone listens to are handed to the webhooks dispatcher
(:func:`dispatch_after_commit`); the periodic maintenance re-sends any that
were not (the outbox).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from django.db import transaction

from .models import TERMINAL_EVENTS, JobEvent, JobEventType


def notify_sql(event_type: str, job: str = "j") -> str:
    """A SQL boolean over the job row aliased `job` (it needs `webhook_url`): does anyone listen?"""
    if event_type in TERMINAL_EVENTS:
        return f"({job}.webhook_url <> '')"
    return "FALSE"


def listens(event_type: str, *, webhook_url: str) -> bool:
    """The same rule as :func:`notify_sql`, for a job already in memory."""
    return event_type in TERMINAL_EVENTS and bool(webhook_url)


def job_event_record(
    *, job_id: Any, event_type: JobEventType | str, at: datetime, webhook_url: str = "", data: dict | None = None
) -> JobEvent:
    """Write one event row (inside the caller's transaction); it is dispatched once that commits."""
    event = JobEvent.objects.create(
        id=uuid.uuid4(),
        job_id=job_id,
        type=event_type,
        data=data or {},
        notify=listens(event_type, webhook_url=webhook_url),
        created_at=at,
    )
    if event.notify:
        dispatch_after_commit([event.id])
    return event


def job_events_rows(jobs, event_type: JobEventType | str, at: datetime, data_for=None) -> list[JobEvent]:
    """Unsaved event rows for many jobs at once (for bulk_create in a batch submission)."""
    return [
        JobEvent(
            id=uuid.uuid4(),
            job_id=job.pk,
            type=event_type,
            data=data_for(job) if data_for else {},
            notify=listens(event_type, webhook_url=job.webhook_url),
            created_at=at,
        )
        for job in jobs
    ]


def dispatch_after_commit(event_ids: list[uuid.UUID]) -> None:
    """Hand events someone listens to to the webhooks dispatcher once the current transaction commits."""
    if event_ids:
        transaction.on_commit(lambda: _dispatch(event_ids))


def _dispatch(event_ids: list[uuid.UUID]) -> None:
    """The webhooks app's dispatcher takes the events from here (see webhooks.services)."""
