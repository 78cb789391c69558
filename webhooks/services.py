"""Every change the webhooks app makes: subscriptions, dispatching events, attempts, redeliveries.

The path of an event: a job's change writes a `JobEvent` with `notify` set
when someone listens (jobs.events, the rule in webhooks.recipients); after
the commit its id goes to the `webhooks_dispatch` actor, which turns it into
one `WebhookDelivery` per receiver (:func:`webhook_events_dispatch`); each
delivery is attempted by the `webhooks_deliver` actor
(:func:`webhook_delivery_attempt`), and a failed attempt schedules the next
one through a delayed message. The periodic sweep
(:func:`webhook_outbox_resend`) dispatches events the broker never got and
re-sends attempts that are overdue, so nothing is lost to a broker outage.
"""

from __future__ import annotations

import json
import logging
import random
import uuid
from datetime import datetime, timedelta
from urllib.parse import parse_qsl, urlsplit

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from audit.redaction import is_sensitive_name
from audit.services import audit_record
from jobs.models import Job, JobEvent
from jobs.workers import worker_id
from jobsite.observability.jobs import job_logging
from jobsite.observability.tracing import span_from_traceparent
from jobsite.outbound import UnsafeURL, check_url

from . import metrics, transport
from .models import SUBSCRIBABLE_EVENTS, DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEventType
from .models import WebhookSubscription as Subscription
from .payloads import EVENT_JOB_FIELDS, event_payload, test_payload
from .recipients import callback_receives, candidate_subscriptions, subscription_receives
from .secrets import SecretFormatError, secret_check, secret_decrypt, secret_encrypt, secret_generate
from .signing import signed_headers

logger = logging.getLogger(__name__)

OPEN_STATUSES = [DeliveryStatus.PENDING, DeliveryStatus.FAILED]
# The sweep's batches: a backlog is worked through over several runs, never all at once.
SWEEP_BATCH = 2000
DISPATCH_CHUNK = 500


class WebhookInputError(ValueError):
    """A subscription change is invalid; `errors` maps each field to its messages (the API's 400)."""

    def __init__(self, errors: dict[str, list]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


class DeliveryBusy(Exception):
    """An attempt of the delivery is under way (the API answers 409)."""


# -- subscriptions ---------------------------------------------------------------------


def webhook_url_check(url: str) -> None:
    """Refuse a URL deliveries may not go to: not http(s), credentials in it, or a non-public host.

    Credentials (`user:password@`, or a query parameter named like a secret)
    would be stored and shown; deliveries are signed instead. The host must
    resolve to public addresses only, unless ALLOW_PRIVATE_NETWORK_URLS (the
    address is checked again at every attempt).
    """
    problems = webhook_url_problems(url, signed_with="the secret")
    if problems:
        raise WebhookInputError({"url": problems})


def webhook_url_problems(url: str, *, signed_with: str, resolve: bool = True) -> list[str]:
    """What is wrong with `url` as a place to deliver events; `resolve=False` judges only a literal host."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return ["Enter a valid URL."]
    problems = []
    if parts.scheme.lower() not in ("http", "https"):
        problems.append("Must be an http or https URL.")
    if parts.username is not None or parts.password is not None:
        problems.append(f"Must not contain credentials (user:password@); deliveries are signed with {signed_with}.")
    names = [name for part in (parts.query, parts.fragment) for name, _ in parse_qsl(part, keep_blank_values=True)]
    secret_names = sorted({name for name in names if is_sensitive_name(name)})
    if secret_names:
        problems.append(
            f"Must not carry secrets in its query ({', '.join(secret_names)}); "
            f"deliveries are signed with {signed_with}."
        )
    if not problems:
        try:
            check_url(url, resolve=resolve)
        except UnsafeURL as exc:
            problems.append(str(exc))
    return problems


def webhook_events_check(events) -> list[str]:
    """The event list, de-duplicated in order; WebhookInputError naming the valid ones otherwise."""
    if not isinstance(events, list) or not events or not all(isinstance(e, str) for e in events):
        raise WebhookInputError({"events": ["Must be a non-empty list of event names."]})
    unknown = [e for e in events if e not in SUBSCRIBABLE_EVENTS]
    if unknown:
        raise WebhookInputError(
            {
                "events": [f"Unknown event(s): {', '.join(unknown)}. Valid events: {', '.join(SUBSCRIBABLE_EVENTS)}."],
                "valid_values": SUBSCRIBABLE_EVENTS,
            }
        )
    return list(dict.fromkeys(events))


def webhook_all_jobs_check(owner, all_jobs: bool) -> None:
    """Only the service's and operators' subscriptions may receive every job's events, whoever sets the flag.

    An operator editing a submitter's subscription must not make it receive
    other users' jobs.
    """
    if all_jobs and owner is not None and not owner.has_perm("webhooks.manage_all_webhooks"):
        raise WebhookInputError(
            {"all_jobs": ["Only subscriptions owned by operators or the service may receive every job's events."]}
        )


def webhook_subscription_create(
    *,
    owner,
    url: str,
    events: list[str],
    description: str = "",
    secret: str | None = None,
    all_jobs: bool = False,
    is_active: bool = True,
) -> tuple[Subscription, str]:
    """Create a subscription; return it with its signing secret (generated unless given), shown this once.

    `owner` None is the service principal, whose subscriptions receive every
    job's events. Whether the caller may ask for `all_jobs` is the edge's check.
    """
    webhook_url_check(url)
    events = webhook_events_check(events)
    webhook_all_jobs_check(owner, all_jobs)
    if secret:
        try:
            secret_check(secret)
        except SecretFormatError as exc:
            raise WebhookInputError({"secret": [str(exc)]}) from None
    else:
        secret = secret_generate()
    with transaction.atomic():
        subscription = Subscription.objects.create(
            user=owner,
            url=url,
            events=events,
            description=description,
            secret=secret_encrypt(secret),
            all_jobs=all_jobs or owner is None,
            is_active=is_active,
        )
        audit_record(
            app="webhooks",
            entity="subscription",
            verb="create",
            resource_id=subscription.pk,
            details={"url": url, "events": events, "all_jobs": subscription.all_jobs, "is_active": is_active},
        )
    return subscription, secret


UPDATABLE = ("url", "events", "description", "is_active", "all_jobs")


def webhook_subscription_update(*, subscription: Subscription, **changes) -> Subscription:
    """Change a subscription's url, events, description, is_active or all_jobs.

    Re-enabling (`is_active` true) a subscription that was disabled clears
    its disabled reason and its record of failures.
    """
    unknown = set(changes) - set(UPDATABLE)
    if unknown:
        raise TypeError(f"Not updatable: {', '.join(sorted(unknown))}")
    if "url" in changes:
        webhook_url_check(changes["url"])
    if "events" in changes:
        changes["events"] = webhook_events_check(changes["events"])
    with transaction.atomic():
        current = Subscription.objects.select_for_update().get(pk=subscription.pk)
        if current.user_id is None:
            changes.pop("all_jobs", None)  # the service's subscriptions receive every job's events
        webhook_all_jobs_check(current.user, changes.get("all_jobs", False))
        changed = {name: value for name, value in changes.items() if getattr(current, name) != value}
        for name, value in changed.items():
            setattr(current, name, value)
        if changed.get("is_active") is True:
            current.disabled_reason, current.failing_since = "", None
        current.save()
        verb = (
            {True: "enable", False: "disable"}.get(changed["is_active"]) if set(changed) == {"is_active"} else "update"
        )
        audit_record(app="webhooks", entity="subscription", verb=verb, resource_id=current.pk, details=changed)
    return current


def webhook_subscription_delete(*, subscription: Subscription) -> None:
    """Delete a subscription with its deliveries."""
    with transaction.atomic():
        audit_record(
            app="webhooks",
            entity="subscription",
            verb="delete",
            resource_id=subscription.pk,
            details={"url": subscription.url},
        )
        subscription.delete()


def webhook_subscription_rotate_secret(*, subscription: Subscription) -> tuple[Subscription, str]:
    """Give a subscription a new secret; return it (shown this once).

    For WEBHOOK_SECRET_ROTATION_OVERLAP (24 h) deliveries carry a signature
    made with the previous secret too, so that receivers can switch over.
    """
    secret = secret_generate()
    now = timezone.now()
    with transaction.atomic():
        current = Subscription.objects.select_for_update().get(pk=subscription.pk)
        current.previous_secret = current.secret
        current.previous_secret_expires_at = now + settings.WEBHOOK_SECRET_ROTATION_OVERLAP
        current.secret = secret_encrypt(secret)
        current.save()
        audit_record(
            app="webhooks",
            entity="subscription",
            verb="rotate_secret",
            resource_id=current.pk,
            details={"previous_secret_valid_until": current.previous_secret_expires_at.isoformat()},
        )
    return current, secret


def webhook_subscription_test(*, subscription: Subscription) -> WebhookDelivery:
    """Send `webhook.test` to the subscription now, once, and return the delivery with the attempt's outcome.

    A test is sent whether or not the subscription is active, and its outcome
    does not count towards disabling it.
    """
    now = timezone.now()
    lease = _lease(now)
    with transaction.atomic():
        delivery = WebhookDelivery.objects.create(
            subscription=subscription,
            event_id=uuid.uuid4(),
            event_type=WebhookEventType.TEST,
            event_at=now,
            url=subscription.url,
            payload=test_payload(subscription_id=subscription.pk, at=now),
            max_attempts=1,
            next_attempt_at=now,
            locked_until=lease,
        )
        audit_record(
            app="webhooks",
            entity="subscription",
            verb="test",
            resource_id=subscription.pk,
            details={"delivery_id": str(delivery.pk)},
        )
    delivery.subscription = subscription
    _attempt(delivery, lease)
    delivery.refresh_from_db()
    return delivery


# -- dispatching events ------------------------------------------------------------------


def webhook_events_hand_over(*, event_ids: list) -> bool:
    """Send committed event ids to the dispatcher; return whether the broker took them.

    A failed send is logged and left to the periodic sweep (the outbox).
    """
    from .actors import webhooks_dispatch

    try:
        webhooks_dispatch.send([str(event_id) for event_id in event_ids])
    except Exception:
        logger.exception("Could not hand %d event(s) to the webhooks dispatcher; the sweep will.", len(event_ids))
        return False
    return True


def webhook_events_dispatch(*, event_ids: list, attempt_first: bool = False) -> list[uuid.UUID]:
    """Turn undispatched events into one delivery per receiver, mark them dispatched; return the deliveries' ids.

    Safe to run twice and concurrently: events are taken with SKIP LOCKED and
    only while undispatched, and a delivery is unique per event and receiver.
    Payloads are built here, once per event, from the event and its job.
    Each delivery's first attempt is a `webhooks_deliver` message sent after
    the commit; with `attempt_first` (the dispatcher actor), the first
    delivery's is made here instead, saving the common single-receiver event
    a trip through the broker, while the others go out in parallel.
    """
    now = timezone.now()
    lease = _lease(now) if attempt_first else None
    with transaction.atomic():
        events = JobEvent.objects.filter(pk__in=event_ids, notify=True, dispatched_at__isnull=True)
        if connection.features.has_select_for_update_skip_locked:
            events = events.select_for_update(skip_locked=True, of=("self",))
        events = list(events.select_related("job", "job__pipeline").only(*EVENT_JOB_FIELDS).order_by("created_at"))
        if not events:
            return []
        # Whole rows: the first attempt may be made here, with the secrets.
        subscriptions = list(candidate_subscriptions(event.job.user_id for event in events).defer(None))
        deliveries = []
        for event in events:
            payload = None
            receivers: list[Subscription | None] = [
                s for s in subscriptions if subscription_receives(s, event.type, event.job.user_id)
            ]
            if callback_receives(event.type, event.job.webhook_url):
                receivers.append(None)
            for subscription in receivers:
                payload = payload or event_payload(event, event.job)
                deliveries.append(
                    WebhookDelivery(
                        id=uuid.uuid4(),
                        subscription=subscription,
                        job=event.job,
                        event_id=event.pk,
                        event_type=event.type,
                        event_at=event.created_at,
                        url=subscription.url if subscription else event.job.webhook_url,
                        payload=payload,
                        max_attempts=len(settings.WEBHOOK_RETRY_SCHEDULE_SECONDS),
                        next_attempt_at=now,
                        locked_until=lease if not deliveries else None,
                    )
                )
        WebhookDelivery.objects.bulk_create(deliveries, ignore_conflicts=True)
        JobEvent.objects.filter(pk__in=[event.pk for event in events]).update(dispatched_at=now)
        ids = [delivery.id for delivery in deliveries]
        sent = ids[1:] if lease else ids
        transaction.on_commit(lambda: _send_attempts(sent))
    if lease and deliveries:
        _attempt(deliveries[0], lease)
    return ids


def _send_attempts(delivery_ids: list, *, delay_ms: int | None = None) -> None:
    from .actors import webhooks_deliver

    for delivery_id in delivery_ids:
        try:
            webhooks_deliver.send_with_options(args=(str(delivery_id),), delay=delay_ms)
        except Exception:
            logger.exception("Could not send delivery %s to the broker; the sweep will.", delivery_id)
            return


# -- attempts -------------------------------------------------------------------------------


def retry_delay_seconds(attempts_made: int) -> float:
    """The wait before the next attempt after `attempts_made` attempts: the schedule's entry, with jitter."""
    schedule = settings.WEBHOOK_RETRY_SCHEDULE_SECONDS
    base = schedule[min(attempts_made, len(schedule) - 1)]
    jitter = settings.WEBHOOK_RETRY_JITTER
    return max(0.0, base * random.uniform(1 - jitter, 1 + jitter))


def _lease(now: datetime) -> datetime:
    """How long an attempt may hold its delivery: the timeouts and a margin."""
    seconds = settings.WEBHOOK_CONNECT_TIMEOUT_SECONDS + settings.WEBHOOK_READ_TIMEOUT_SECONDS + 30
    return now + timedelta(seconds=seconds)


def webhook_delivery_attempt(*, delivery_id) -> str | None:
    """Make the delivery's due attempt; return its new status, or None when no attempt was due.

    A duplicate or early message finds nothing due; two messages never make
    the same attempt twice (the delivery is leased with a conditional update).
    """
    now = timezone.now()
    lease = _lease(now)
    due = WebhookDelivery.objects.filter(pk=delivery_id, status__in=OPEN_STATUSES, next_attempt_at__lte=now).filter(
        Q(locked_until__isnull=True) | Q(locked_until__lt=now)
    )
    if not due.update(locked_until=lease):
        return None
    delivery = WebhookDelivery.objects.select_related("subscription").get(pk=delivery_id)
    return _attempt(delivery, lease)


class _Undeliverable(Exception):
    pass


def _target(delivery: WebhookDelivery, now: datetime) -> tuple[str, list[str]]:
    """Where the delivery goes now and the secrets that sign it."""
    subscription = delivery.subscription
    if subscription is None:
        row = Job.objects.filter(pk=delivery.job_id).values_list("webhook_url", "webhook_secret").first()
        url, secret = row or ("", "")
        if not url:
            raise _Undeliverable("The job has no webhook_url any more.")
        return url, [secret] if secret else []
    if not subscription.is_active and delivery.event_type != WebhookEventType.TEST:
        reason = f" ({subscription.disabled_reason})" if subscription.disabled_reason else ""
        raise _Undeliverable(f"The subscription is disabled{reason}.")
    secrets = [secret_decrypt(subscription.secret)]
    expires = subscription.previous_secret_expires_at
    if subscription.previous_secret and expires and expires > now:
        secrets.append(secret_decrypt(subscription.previous_secret))
    return subscription.url, secrets


def _attempt(delivery: WebhookDelivery, lease: datetime) -> str | None:
    """Make one attempt (the delivery leased until `lease`).

    Its log lines carry the job and the request id of the call that created
    the job; its span continues the job's trace.
    """
    job = Job.objects.filter(pk=delivery.job_id).values_list("request_id", "traceparent", "pipeline__name").first()
    request_id, traceparent, pipeline = job or ("", "", "")
    span = {"kind": "client", "attributes": {"event": delivery.event_type}}
    with (
        job_logging(
            job_id=str(delivery.job_id or ""), request_id=request_id, pipeline=pipeline or "", worker=worker_id()
        ),
        span_from_traceparent("webhook delivery", traceparent, **span),
    ):
        return _attempt_now(delivery, lease)


def _attempt_now(delivery: WebhookDelivery, lease: datetime) -> str | None:
    started_at = timezone.now()
    try:
        url, secrets = _target(delivery, started_at)
    except _Undeliverable as exc:
        url = delivery.url
        result = transport.AttemptResult("disabled", None, str(exc), "", 0)
    except ValueError as exc:  # a secret no configured key decrypts: fix WEBHOOK_SECRET_KEYS, then redeliver
        url = delivery.url
        result = transport.AttemptResult("error", None, str(exc), "", 0)
    else:
        body = json.dumps(delivery.payload, separators=(",", ":"), ensure_ascii=False)
        headers = signed_headers(msg_id=str(delivery.event_id), body=body, secrets=secrets, at=started_at)
        result = transport.post(url, body=body, headers=headers)
    metrics.attempt_recorded(outcome=result.outcome, duration_seconds=result.duration_ms / 1000)
    return _record_attempt(delivery, result, url=url, started_at=started_at, lease=lease)


def _record_attempt(delivery, result, *, url: str, started_at: datetime, lease: datetime) -> str | None:
    number = delivery.attempts + 1
    finished_at = timezone.now()
    next_at = None
    if result.succeeded:
        status = DeliveryStatus.SUCCEEDED
    elif result.outcome == "disabled" or number >= delivery.max_attempts:
        status = DeliveryStatus.DEAD
    else:
        status = DeliveryStatus.FAILED
        next_at = finished_at + timedelta(seconds=retry_delay_seconds(number))
    with transaction.atomic():
        updated = WebhookDelivery.objects.filter(pk=delivery.pk, locked_until=lease).update(
            status=status,
            attempts=number,
            next_attempt_at=next_at,
            locked_until=None,
            url=url,
            last_response_code=result.status_code,
            last_error=result.error,
            response_excerpt=result.excerpt,
            duration_ms=result.duration_ms,
            **({"delivered_at": finished_at} if result.succeeded else {}),
        )
        if not updated:
            logger.warning("Delivery %s: attempt %d outlived its lease; its outcome is dropped.", delivery.pk, number)
            return None
        WebhookAttempt.objects.create(
            delivery_id=delivery.pk,
            number=number,
            started_at=started_at,
            duration_ms=result.duration_ms,
            url=url,
            succeeded=result.succeeded,
            outcome=result.outcome,
            response_code=result.status_code,
            error=result.error,
            response_excerpt=result.excerpt,
        )
        if delivery.subscription_id and delivery.event_type != WebhookEventType.TEST:
            _subscription_health(delivery.subscription, succeeded=result.succeeded, at=started_at)
    logger.info(
        "Webhook delivery %s (%s) attempt %d: %s%s -> %s.",
        delivery.pk,
        delivery.event_type,
        number,
        result.outcome,
        f" {result.status_code}" if result.status_code else "",
        status,
    )
    if result.succeeded:
        metrics.delivery_succeeded(latency_seconds=(finished_at - delivery.event_at).total_seconds())
    if next_at is not None:
        _send_attempts([delivery.pk], delay_ms=max(0, round((next_at - timezone.now()).total_seconds() * 1000)))
    return status


def _subscription_health(subscription: Subscription, *, succeeded: bool, at: datetime) -> None:
    """Track a subscription's run of failures; disable it once they have lasted WEBHOOK_DISABLE_AFTER."""
    subscription_id = subscription.pk
    subscriptions = Subscription.objects.filter(pk=subscription_id)
    if succeeded:
        if subscription.failing_since is not None:  # as read with the delivery: nothing to clear otherwise
            subscriptions.filter(failing_since__isnull=False).update(failing_since=None)
        return
    subscriptions.filter(failing_since__isnull=True).update(failing_since=at)
    since = subscriptions.values_list("failing_since", flat=True).first()
    if since is None or at - since < settings.WEBHOOK_DISABLE_AFTER:
        return
    reason = f"Every delivery failed since {since:%Y-%m-%d %H:%M} UTC; re-enable it once the endpoint works."
    if subscriptions.filter(is_active=True).update(is_active=False, disabled_reason=reason, updated_at=at):
        details = {"reason": reason}
        audit_record(
            app="webhooks", entity="subscription", verb="disable", resource_id=subscription_id, details=details
        )
        logger.warning("Webhook subscription %s disabled: %s", subscription_id, reason)


def webhook_delivery_redeliver(*, delivery: WebhookDelivery) -> WebhookDelivery:
    """Make a new attempt of a delivery now, whatever its status; the same webhook-id and payload.

    A finished (succeeded or dead) delivery gets one more attempt; one still
    retrying has its next attempt brought forward. DeliveryBusy while an
    attempt is under way.
    """
    now = timezone.now()
    with transaction.atomic():
        current = WebhookDelivery.objects.select_for_update().get(pk=delivery.pk)
        if current.locked_until and current.locked_until > now:
            raise DeliveryBusy(f"An attempt of delivery {current.pk} is under way.")
        if current.status in (DeliveryStatus.SUCCEEDED, DeliveryStatus.DEAD):
            current.max_attempts = current.attempts + 1
        current.status = DeliveryStatus.PENDING
        current.next_attempt_at = now
        current.save(update_fields=["status", "next_attempt_at", "max_attempts"])
        audit_record(
            app="webhooks",
            entity="delivery",
            verb="redeliver",
            resource_id=current.pk,
            details={"event_id": str(current.event_id), "event_type": current.event_type},
        )
        transaction.on_commit(lambda: _send_attempts([current.pk]))
    return current


# -- the sweep --------------------------------------------------------------------------------


def webhook_outbox_resend(*, now: datetime | None = None) -> tuple[int, int]:
    """Dispatch events nobody handed over, re-send attempts nobody made; return both counts.

    Events with `notify` still undispatched WEBHOOK_OUTBOX_RESEND_SECONDS
    after their change (the broker was down at commit time) are dispatched
    here directly. Attempts due for WEBHOOK_STUCK_SECONDS and not under way
    (their message was lost) are sent again, each at most once per that
    period: the send moves `next_attempt_at` forward with a conditional
    update, so concurrent sweeps send once.
    """
    now = now or timezone.now()
    event_ids = list(
        JobEvent.objects.filter(
            notify=True,
            dispatched_at__isnull=True,
            created_at__lt=now - timedelta(seconds=settings.WEBHOOK_OUTBOX_RESEND_SECONDS),
        )
        .order_by("created_at")
        .values_list("id", flat=True)[:SWEEP_BATCH]
    )
    dispatched = 0
    for start in range(0, len(event_ids), DISPATCH_CHUNK):
        dispatched += len(webhook_events_dispatch(event_ids=event_ids[start : start + DISPATCH_CHUNK]))
    stuck = list(
        WebhookDelivery.objects.filter(
            Q(locked_until__isnull=True) | Q(locked_until__lt=now),
            status__in=OPEN_STATUSES,
            next_attempt_at__lt=now - timedelta(seconds=settings.WEBHOOK_STUCK_SECONDS),
        )
        .order_by("next_attempt_at")
        .values_list("id", "next_attempt_at")[:SWEEP_BATCH]
    )
    resent = []
    for delivery_id, due in stuck:
        if WebhookDelivery.objects.filter(pk=delivery_id, next_attempt_at=due).update(next_attempt_at=now):
            resent.append(delivery_id)
    _send_attempts(resent)
    if event_ids or resent:
        logger.info(
            "Webhooks sweep: %d delivery(ies) from %d event(s), %d attempt(s) re-sent.",
            dispatched,
            len(event_ids),
            len(resent),
        )
    return dispatched, len(resent)
