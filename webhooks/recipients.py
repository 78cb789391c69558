"""Who receives a job's event: the one home of that rule, in Python and in SQL.

- A subscription receives the events it lists, of its owner's jobs (jobs filed
  under its owner's user id); with `all_jobs` (operators and the service
  principal, whose subscriptions always have it) of every job. Only active
  subscriptions receive anything.
- A job's own `webhook_url` receives the job's terminal events (completed,
  failed, cancelled).

`jobs.events` asks :func:`listens` (a job in memory) or embeds
:func:`listens_sql` (in the run path's single statements) when it writes an
event; the dispatcher asks :func:`subscription_receives` for each subscription.
Tests check that the three agree.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from django.db.models import Q

from jobs.models import TERMINAL_EVENTS

from .models import SUBSCRIBABLE_EVENTS, WebhookSubscription


def callback_receives(event_type: str, webhook_url: str) -> bool:
    """Whether a job's own webhook_url receives this event of the job."""
    return event_type in TERMINAL_EVENTS and bool(webhook_url)


def subscription_receives(subscription: WebhookSubscription, event_type: str, job_user_id) -> bool:
    """Whether an (active) subscription receives this event of a job filed under `job_user_id`."""
    if not subscription.is_active or event_type not in subscription.events:
        return False
    return subscription.all_jobs or (job_user_id is not None and subscription.user_id == job_user_id)


def candidate_subscriptions(user_ids: Iterable[uuid.UUID | None]):
    """Active subscriptions that may receive events of jobs filed under these users (one query)."""
    owners = [user_id for user_id in set(user_ids) if user_id is not None]
    return WebhookSubscription.objects.filter(Q(all_jobs=True) | Q(user_id__in=owners), is_active=True).only(
        "id", "user_id", "all_jobs", "events", "is_active", "url"
    )


def listens(event_type: str, *, webhook_url: str, job_user_id) -> bool:
    """Whether anyone receives this event of a job in memory (at most one query)."""
    if callback_receives(event_type, webhook_url):
        return True
    return any(
        subscription_receives(subscription, event_type, job_user_id)
        for subscription in candidate_subscriptions([job_user_id])
    )


def listeners_of(event_type: str, user_ids: Iterable) -> tuple[bool, set]:
    """For many jobs at once: whether an every-job subscription takes the event, and which owners' do."""
    everyone, owners = False, set()
    for subscription in candidate_subscriptions(user_ids):
        if event_type in subscription.events:
            if subscription.all_jobs:
                everyone = True
            else:
                owners.add(subscription.user_id)
    return everyone, owners


def listens_sql(event_type: str, job: str = "j") -> str:
    """:func:`listens` as a PostgreSQL boolean over the job row aliased `job` (webhook_url, user_id).

    Each EXISTS is answered from a partial index of active subscriptions
    (by owner, and the every-job ones), reading a handful of rows at most.
    """
    if event_type not in SUBSCRIBABLE_EVENTS:
        raise ValueError(f"Not a job event: {event_type!r}")
    table = WebhookSubscription._meta.db_table
    wanted = f"""s.events @> '["{event_type}"]'::jsonb"""
    # Assembled from the model's table name and a checked event type; nothing comes from a request.
    parts = [
        f"EXISTS (SELECT 1 FROM {table} s WHERE s.is_active AND s.user_id = {job}.user_id AND {wanted})",  # noqa: S608
        f"EXISTS (SELECT 1 FROM {table} s WHERE s.is_active AND s.all_jobs AND {wanted})",  # noqa: S608
    ]
    if event_type in TERMINAL_EVENTS:
        parts.insert(0, f"{job}.webhook_url <> ''")
    return "(" + " OR ".join(parts) + ")"
