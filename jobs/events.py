"""Job events: the row every change of a job's state writes, in the same transaction as the change.

The run path (jobs.run) folds the event's INSERT into the statement that
changes the job; the other services write it with :func:`job_event_record`.
An event is `notify` when, at write time, someone listens: the job's own
`webhook_url` for a terminal event, or an active subscription that wants it
(the rule lives in webhooks.recipients: :func:`listens` asks it of a job in
memory, :func:`notify_sql` embeds it in a statement). Once the change has
committed, events someone listens to are handed to the webhooks dispatcher
(:func:`dispatch_after_commit`); the webhooks sweep dispatches any that were
not (the outbox).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from django.db import transaction

from .models import Job, JobEvent, JobEventType

_UNKNOWN = object()


def notify_sql(event_type: str, job: str = "j") -> str:
    """A PostgreSQL boolean over the job row aliased `job` (it needs `webhook_url` and `user_id`): does anyone listen?

    Part of the run path's single statements: each subscription check is an
    EXISTS answered from a partial index (see webhooks.recipients.listens_sql).
    """
    from webhooks.recipients import listens_sql

    return listens_sql(event_type, job)


def listens(event_type: str, *, webhook_url: str, user_id: Any) -> bool:
    """The same rule as :func:`notify_sql`, for a job already in memory (one query for the subscriptions)."""
    from webhooks.recipients import listens as recipients_listen

    return recipients_listen(event_type, webhook_url=webhook_url, job_user_id=user_id)


def job_event_record(
    *,
    job_id: Any,
    event_type: JobEventType | str,
    at: datetime,
    webhook_url: str = "",
    user_id: Any = _UNKNOWN,
    data: dict | None = None,
) -> JobEvent:
    """Write one event row (inside the caller's transaction); it is dispatched once that commits.

    `user_id` is the job's owner; a caller that does not pass it costs a read of it.
    """
    if user_id is _UNKNOWN:
        user_id = Job.objects.filter(pk=job_id).values_list("user_id", flat=True).first()
    event = JobEvent.objects.create(
        id=uuid.uuid4(),
        job_id=job_id,
        type=event_type,
        data=data or {},
        notify=listens(event_type, webhook_url=webhook_url, user_id=user_id),
        created_at=at,
    )
    if event.notify:
        dispatch_after_commit([event.id])
    return event


def job_events_rows(jobs, event_type: JobEventType | str, at: datetime, data_for=None) -> list[JobEvent]:
    """Unsaved event rows for many jobs at once, for the caller to insert in its transaction.

    One query finds the listeners of all of them. The caller, once it has
    inserted them, hands those someone listens to to :func:`dispatch_after_commit`.
    """
    from webhooks.recipients import callback_receives, listeners_of

    everyone, owners = listeners_of(event_type, (job.user_id for job in jobs))
    rows = [
        JobEvent(
            id=uuid.uuid4(),
            job_id=job.pk,
            type=event_type,
            data=data_for(job) if data_for else {},
            notify=everyone or job.user_id in owners or callback_receives(event_type, job.webhook_url),
            created_at=at,
        )
        for job in jobs
    ]
    return rows


def dispatch_after_commit(event_ids: list[uuid.UUID]) -> None:
    """Hand events someone listens to to the webhooks dispatcher once the current transaction commits."""
    if event_ids:
        transaction.on_commit(lambda: _dispatch(event_ids))


def _dispatch(event_ids: list[uuid.UUID]) -> None:
    """Send the events to the webhooks dispatcher actor; if the broker refuses, the webhooks sweep will."""
    from webhooks.services import webhook_events_hand_over

    webhook_events_hand_over(event_ids=event_ids)
