"""Dispatching events and attempting deliveries against real receivers on 127.0.0.1."""

import threading
import time
from datetime import timedelta

import pytest
from django.utils import timezone
from dramatiq import Message
from standardwebhooks.webhooks import WebhookVerificationError
from werkzeug import Response

from audit.models import AuditLog
from jobs.events import _dispatch
from jobs.models import JobEvent, JobEventType
from tests.credentials import remember, webhook_subscription_for
from tests.test_outbound import fake_dns
from webhooks import services
from webhooks.actors import webhooks_dispatch
from webhooks.models import DeliveryStatus, WebhookDelivery, WebhookSubscription

from .conftest import body_of, echo_job, event_for, received, verified


@pytest.fixture
def fast_schedule(settings):
    settings.WEBHOOK_RETRY_SCHEDULE_SECONDS = [0, 0, 0]
    settings.WEBHOOK_RETRY_JITTER = 0


def dispatch(event, capture) -> list[WebhookDelivery]:
    with capture(execute=True):
        ids = services.webhook_events_dispatch(event_ids=[event.pk])
    return list(WebhookDelivery.objects.filter(pk__in=ids).order_by("created_at"))


def queued(broker, queue):
    return [Message.decode(data) for data in broker.queues[queue].queue]


# -- who receives what ----------------------------------------------------------------------


def test_an_event_goes_to_its_owners_subscriptions_every_job_ones_and_the_jobs_callback(
    user, other_user, operator_user, receiver_url, stub_broker, django_capture_on_commit_callbacks
):
    mine = webhook_subscription_for(user, receiver_url, ["job.completed", "job.failed"])
    webhook_subscription_for(other_user, receiver_url, ["job.completed"])
    everyone = webhook_subscription_for(operator_user, receiver_url, ["job.completed"], all_jobs=True)
    webhook_subscription_for(user, receiver_url, ["job.started"])  # another event
    webhook_subscription_for(user, receiver_url, ["job.completed"], is_active=False)
    job = echo_job(user=user, webhook_url=receiver_url + "/callback")
    event = event_for(job)

    deliveries = dispatch(event, django_capture_on_commit_callbacks)

    assert {d.subscription_id for d in deliveries} == {mine.pk, everyone.pk, None}
    assert {d.event_id for d in deliveries} == {event.pk}
    callback = next(d for d in deliveries if d.subscription_id is None)
    assert callback.url == receiver_url + "/callback"
    event.refresh_from_db()
    assert event.dispatched_at is not None
    assert [m.actor_name for m in queued(stub_broker, "webhooks")] == ["webhooks_deliver"] * 3


def test_the_dispatcher_makes_the_first_attempt_itself_and_sends_the_others(
    user,
    operator_user,
    httpserver,
    receiver_url,
    stub_broker,
    django_capture_on_commit_callbacks,
    django_assert_max_num_queries,
):
    httpserver.expect_request("/hook").respond_with_data("ok")
    webhook_subscription_for(user, receiver_url, ["job.completed"])
    webhook_subscription_for(operator_user, receiver_url, ["job.completed"], all_jobs=True)
    event = event_for(echo_job(user=user))

    with django_capture_on_commit_callbacks(execute=True), django_assert_max_num_queries(12):
        ids = services.webhook_events_dispatch(event_ids=[event.pk], attempt_first=True)

    statuses = dict(WebhookDelivery.objects.filter(pk__in=ids).values_list("pk", "status"))
    assert sorted(statuses.values()) == ["pending", "succeeded"]
    assert len(received(httpserver)) == 1
    (message,) = queued(stub_broker, "webhooks")
    assert message.args == (str(next(pk for pk, status in statuses.items() if status == "pending")),)


def test_the_jobs_callback_receives_only_terminal_events(user, receiver_url, django_capture_on_commit_callbacks):
    job = echo_job(user=user, webhook_url=receiver_url)

    assert dispatch(event_for(job, JobEventType.STARTED), django_capture_on_commit_callbacks) == []
    assert len(dispatch(event_for(job, JobEventType.FAILED), django_capture_on_commit_callbacks)) == 1


def test_dispatching_an_event_twice_makes_no_second_delivery(user, receiver_url, django_capture_on_commit_callbacks):
    webhook_subscription_for(user, receiver_url, ["job.completed"])
    event = event_for(echo_job(user=user))
    assert len(dispatch(event, django_capture_on_commit_callbacks)) == 1
    JobEvent.objects.filter(pk=event.pk).update(dispatched_at=None)  # as if a second dispatcher raced the first

    dispatch(event, django_capture_on_commit_callbacks)

    assert WebhookDelivery.objects.filter(event_id=event.pk).count() == 1


# -- an attempt -------------------------------------------------------------------------------


def test_an_attempt_sends_the_payload_signed_as_standard_webhooks_verifies_it(
    user, httpserver, receiver_url, django_capture_on_commit_callbacks
):
    httpserver.expect_request("/hook", method="POST").respond_with_data("", status=204)
    subscription = webhook_subscription_for(user, receiver_url, ["job.completed"])
    job = echo_job(user=user)
    event = event_for(job, attempt=1, duration_ms=12)
    (delivery,) = dispatch(event, django_capture_on_commit_callbacks)
    attempts_before = _sample("jobsite_webhook_attempts_total", outcome="succeeded")
    latencies_before = _sample("jobsite_webhook_delivery_latency_seconds_count")

    assert services.webhook_delivery_attempt(delivery_id=delivery.pk) == DeliveryStatus.SUCCEEDED

    (request,) = received(httpserver)
    payload = verified(request, subscription.plain_secret)
    assert payload["type"] == "job.completed"
    assert payload["data"]["job_id"] == str(job.pk)
    assert payload["data"]["status"] == "completed"
    assert payload["data"]["result_url"] == f"/api/v1/jobs/{job.pk}/result/"
    assert request.headers["webhook-id"] == str(event.pk)
    assert request.headers["Content-Type"] == "application/json"
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_response_code) == ("succeeded", 1, 204)
    assert delivery.delivered_at is not None and delivery.next_attempt_at is None
    assert list(delivery.attempt_log.values_list("number", "outcome", "response_code")) == [(1, "succeeded", 204)]
    assert _sample("jobsite_webhook_attempts_total", outcome="succeeded") == attempts_before + 1
    assert _sample("jobsite_webhook_delivery_latency_seconds_count") == latencies_before + 1


def test_a_signature_made_with_another_secret_does_not_verify(
    user, httpserver, receiver_url, django_capture_on_commit_callbacks
):
    httpserver.expect_request("/hook").respond_with_data("ok")
    webhook_subscription_for(user, receiver_url, ["job.completed"])
    other = webhook_subscription_for(user, "http://127.0.0.1:9/unused", ["job.failed"])
    (delivery,) = dispatch(event_for(echo_job(user=user)), django_capture_on_commit_callbacks)
    services.webhook_delivery_attempt(delivery_id=delivery.pk)

    with pytest.raises(WebhookVerificationError):
        verified(received(httpserver)[0], other.plain_secret)


def test_a_due_attempt_is_made_once_however_many_messages_ask(
    user, httpserver, receiver_url, django_capture_on_commit_callbacks
):
    httpserver.expect_request("/hook").respond_with_data("ok")
    webhook_subscription_for(user, receiver_url, ["job.completed"])
    (delivery,) = dispatch(event_for(echo_job(user=user)), django_capture_on_commit_callbacks)

    results = [services.webhook_delivery_attempt(delivery_id=delivery.pk) for _ in range(3)]

    assert results == ["succeeded", None, None]
    assert len(received(httpserver)) == 1


@pytest.mark.parametrize(
    ("secret", "key"), [("plain job secret", None), ("whsec_" + "QUJD" * 8, None)], ids=["plain", "whsec"]
)
def test_the_jobs_callback_is_signed_with_its_webhook_secret(
    secret, key, user, httpserver, receiver_url, django_capture_on_commit_callbacks
):
    httpserver.expect_request("/hook").respond_with_data("ok")
    job = echo_job(user=user, webhook_url=receiver_url, webhook_secret=remember(secret))
    (delivery,) = dispatch(event_for(job, JobEventType.CANCELLED), django_capture_on_commit_callbacks)

    assert services.webhook_delivery_attempt(delivery_id=delivery.pk) == "succeeded"

    payload = verified(received(httpserver)[0], secret)
    assert (payload["type"], payload["data"]["status"]) == ("job.cancelled", "cancelled")


def test_a_callback_without_a_secret_is_sent_unsigned_with_its_id(
    user, httpserver, receiver_url, django_capture_on_commit_callbacks
):
    httpserver.expect_request("/hook").respond_with_data("ok")
    job = echo_job(user=user, webhook_url=receiver_url)
    event = event_for(job, JobEventType.FAILED, error="boom")
    (delivery,) = dispatch(event, django_capture_on_commit_callbacks)
    services.webhook_delivery_attempt(delivery_id=delivery.pk)

    (request,) = received(httpserver)
    assert "webhook-signature" not in request.headers
    assert request.headers["webhook-id"] == str(event.pk)
    assert body_of(request)["data"]["error_message"] == "boom"


# -- failures and retries ------------------------------------------------------------------------


def test_a_failed_attempt_schedules_the_next_one_with_a_delayed_message(
    settings, user, httpserver, receiver_url, stub_broker, django_capture_on_commit_callbacks
):
    settings.WEBHOOK_RETRY_SCHEDULE_SECONDS = [0, 60, 600]
    settings.WEBHOOK_RETRY_JITTER = 0
    httpserver.expect_request("/hook").respond_with_data("down for maintenance", status=503)
    webhook_subscription_for(user, receiver_url, ["job.completed"])
    (delivery,) = dispatch(event_for(echo_job(user=user)), django_capture_on_commit_callbacks)
    stub_broker.flush_all()

    assert services.webhook_delivery_attempt(delivery_id=delivery.pk) == DeliveryStatus.FAILED

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_response_code) == ("failed", 1, 503)
    assert delivery.last_error == "The receiver answered 503."
    assert delivery.response_excerpt == "down for maintenance"
    assert timedelta(seconds=59) < delivery.next_attempt_at - timezone.now() <= timedelta(seconds=60)
    (message,) = queued(stub_broker, "webhooks.DQ")
    assert (message.actor_name, message.args) == ("webhooks_deliver", (str(delivery.pk),))
    assert 59_000 < message.options["eta"] - time.time() * 1000 <= 60_000
    # The delayed message is not due yet: an early one does nothing.
    assert services.webhook_delivery_attempt(delivery_id=delivery.pk) is None


def test_the_retry_schedule_applies_its_jitter(settings):
    settings.WEBHOOK_RETRY_SCHEDULE_SECONDS = [0, 100]
    settings.WEBHOOK_RETRY_JITTER = 0.2

    delays = {round(services.retry_delay_seconds(1), 3) for _ in range(50)}

    assert all(80 <= d <= 120 for d in delays) and len(delays) > 1


def test_after_the_last_attempt_the_delivery_is_dead_and_a_redelivery_keeps_its_webhook_id(
    fast_schedule, user, httpserver, receiver_url, django_capture_on_commit_callbacks
):
    httpserver.expect_request("/hook").respond_with_data("no", status=500)
    subscription = webhook_subscription_for(user, receiver_url, ["job.completed"])
    (delivery,) = dispatch(event_for(echo_job(user=user)), django_capture_on_commit_callbacks)

    statuses = [services.webhook_delivery_attempt(delivery_id=delivery.pk) for _ in range(3)]

    assert statuses == ["failed", "failed", "dead"]
    delivery.refresh_from_db()
    assert (delivery.attempts, delivery.next_attempt_at) == (3, None)
    assert list(delivery.attempt_log.values_list("outcome", flat=True)) == ["http_error"] * 3

    httpserver.clear()
    httpserver.expect_request("/hook").respond_with_data("fixed")
    with django_capture_on_commit_callbacks(execute=True):
        services.webhook_delivery_redeliver(delivery=delivery)
    assert services.webhook_delivery_attempt(delivery_id=delivery.pk) == "succeeded"

    (request,) = received(httpserver)
    assert request.headers["webhook-id"] == str(delivery.event_id)
    verified(request, subscription.plain_secret)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.max_attempts) == ("succeeded", 4, 4)
    assert AuditLog.objects.filter(action="webhooks.delivery.redeliver", resource_id=str(delivery.pk)).exists()


def test_a_redelivery_while_an_attempt_is_under_way_is_refused(user, receiver_url, django_capture_on_commit_callbacks):
    webhook_subscription_for(user, receiver_url, ["job.completed"])
    (delivery,) = dispatch(event_for(echo_job(user=user)), django_capture_on_commit_callbacks)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(locked_until=timezone.now() + timedelta(seconds=30))

    with pytest.raises(services.DeliveryBusy):
        services.webhook_delivery_redeliver(delivery=delivery)


def test_a_redirect_is_a_failed_attempt_and_is_not_followed(
    user, httpserver, receiver_url, django_capture_on_commit_callbacks
):
    httpserver.expect_request("/hook").respond_with_response(
        Response(status=302, headers={"Location": f"http://127.0.0.1:{httpserver.port}/elsewhere"})
    )
    httpserver.expect_request("/elsewhere").respond_with_data("followed")
    webhook_subscription_for(user, receiver_url, ["job.completed"])
    (delivery,) = dispatch(event_for(echo_job(user=user)), django_capture_on_commit_callbacks)

    assert services.webhook_delivery_attempt(delivery_id=delivery.pk) == "failed"

    assert [r.path for r in received(httpserver)] == ["/hook"]
    delivery.refresh_from_db()
    assert delivery.last_response_code == 302 and "redirects are not followed" in delivery.last_error


def test_a_huge_answer_keeps_only_a_bounded_excerpt(
    settings, user, httpserver, receiver_url, django_capture_on_commit_callbacks
):
    settings.WEBHOOK_RESPONSE_EXCERPT_BYTES = 100
    httpserver.expect_request("/hook").respond_with_data("x" * 5_000_000 + "\x00")
    webhook_subscription_for(user, receiver_url, ["job.completed"])
    (delivery,) = dispatch(event_for(echo_job(user=user)), django_capture_on_commit_callbacks)

    assert services.webhook_delivery_attempt(delivery_id=delivery.pk) == "succeeded"

    delivery.refresh_from_db()
    assert delivery.response_excerpt == "x" * 100
    assert delivery.attempt_log.get().response_excerpt == "x" * 100


def test_a_receiver_that_does_not_answer_in_time_is_a_timeout(
    settings, user, httpserver, receiver_url, django_capture_on_commit_callbacks
):
    settings.WEBHOOK_READ_TIMEOUT_SECONDS = 0.3
    answer = threading.Event()

    def slow(request):
        answer.wait(10)
        return Response("late")

    httpserver.expect_request("/hook").respond_with_handler(slow)
    webhook_subscription_for(user, receiver_url, ["job.completed"])
    (delivery,) = dispatch(event_for(echo_job(user=user)), django_capture_on_commit_callbacks)

    try:
        assert services.webhook_delivery_attempt(delivery_id=delivery.pk) == "failed"
    finally:
        answer.set()
        while not httpserver.log:  # let the server finish with it before the next test
            time.sleep(0.05)

    attempt = WebhookDelivery.objects.get(pk=delivery.pk).attempt_log.get()
    assert (attempt.outcome, attempt.response_code) == ("timeout", None)
    assert "read 0.3 s" in attempt.error


def test_a_closed_port_is_a_connection_error_without_the_url_in_it(user, django_capture_on_commit_callbacks):
    webhook_subscription_for(user, "http://127.0.0.1:9/hook?x=1", ["job.completed"])
    (delivery,) = dispatch(event_for(echo_job(user=user)), django_capture_on_commit_callbacks)

    services.webhook_delivery_attempt(delivery_id=delivery.pk)

    attempt = WebhookDelivery.objects.get(pk=delivery.pk).attempt_log.get()
    assert attempt.outcome == "connection_error"
    assert "Connection refused" in attempt.error and "/hook" not in attempt.error


def test_a_host_that_turns_private_after_registration_is_refused_at_send(
    settings, monkeypatch, user, httpserver, django_capture_on_commit_callbacks
):
    settings.ALLOW_PRIVATE_NETWORK_URLS = False
    httpserver.expect_request("/hook").respond_with_data("reached")
    answers = iter(["93.184.216.34"])
    fake_dns(monkeypatch, {"hooks.example": lambda: [next(answers, "127.0.0.1")]})
    webhook_subscription_for(user, f"http://hooks.example:{httpserver.port}/hook", ["job.completed"])
    (delivery,) = dispatch(event_for(echo_job(user=user)), django_capture_on_commit_callbacks)

    assert services.webhook_delivery_attempt(delivery_id=delivery.pk) == "failed"

    attempt = WebhookDelivery.objects.get(pk=delivery.pk).attempt_log.get()
    assert attempt.outcome == "refused" and "127.0.0.1" in attempt.error
    assert received(httpserver) == []


# -- secrets ------------------------------------------------------------------------------------


def test_after_a_rotation_deliveries_verify_with_either_secret_until_the_overlap_ends(
    user, httpserver, receiver_url, django_capture_on_commit_callbacks
):
    httpserver.expect_request("/hook").respond_with_data("ok")
    subscription = webhook_subscription_for(user, receiver_url, ["job.completed", "job.failed"])
    old_secret = subscription.plain_secret
    subscription, new_secret = services.webhook_subscription_rotate_secret(subscription=subscription)
    remember(new_secret)
    (first,) = dispatch(event_for(echo_job(user=user)), django_capture_on_commit_callbacks)
    services.webhook_delivery_attempt(delivery_id=first.pk)

    request = received(httpserver)[0]
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    verified(request, old_secret)
    verified(request, new_secret)

    WebhookSubscription.objects.filter(pk=subscription.pk).update(
        previous_secret_expires_at=timezone.now() - timedelta(seconds=1)
    )
    (second,) = dispatch(event_for(echo_job(user=user), JobEventType.FAILED), django_capture_on_commit_callbacks)
    services.webhook_delivery_attempt(delivery_id=second.pk)
    request = received(httpserver)[1]
    assert len(request.headers["webhook-signature"].split(" ")) == 1
    verified(request, new_secret)

    with pytest.raises(WebhookVerificationError):
        verified(request, old_secret)


def test_secrets_are_stored_encrypted(user, receiver_url):
    subscription = webhook_subscription_for(user, receiver_url)

    stored = WebhookSubscription.objects.filter(pk=subscription.pk).values_list("secret", flat=True).get()

    assert subscription.plain_secret.startswith("whsec_")
    assert subscription.plain_secret not in stored
    assert subscription.plain_secret.removeprefix("whsec_") not in stored


# -- a failing endpoint is disabled --------------------------------------------------------------


def test_an_endpoint_failing_for_webhook_disable_after_is_disabled_and_its_owner_re_enables_it(
    settings, fast_schedule, user, httpserver, receiver_url, django_capture_on_commit_callbacks
):
    settings.WEBHOOK_DISABLE_AFTER = timedelta(days=5)
    httpserver.expect_request("/hook").respond_with_data("no", status=500)
    subscription = webhook_subscription_for(user, receiver_url, ["job.completed", "job.failed"])
    (first,) = dispatch(event_for(echo_job(user=user)), django_capture_on_commit_callbacks)
    services.webhook_delivery_attempt(delivery_id=first.pk)
    subscription.refresh_from_db()
    assert subscription.is_active and subscription.failing_since is not None

    WebhookSubscription.objects.filter(pk=subscription.pk).update(failing_since=timezone.now() - timedelta(days=6))
    services.webhook_delivery_attempt(delivery_id=first.pk)

    subscription.refresh_from_db()
    assert not subscription.is_active
    assert subscription.disabled_reason.startswith("Every delivery failed since")
    assert AuditLog.objects.filter(action="webhooks.subscription.disable", resource_id=str(subscription.pk)).exists()
    # Its remaining attempt is not sent: the delivery ends dead, saying why.
    assert services.webhook_delivery_attempt(delivery_id=first.pk) == "dead"
    assert WebhookDelivery.objects.get(pk=first.pk).attempt_log.last().outcome == "disabled"
    assert len(received(httpserver)) == 2
    # Nothing new reaches a disabled subscription.
    assert dispatch(event_for(echo_job(user=user), JobEventType.FAILED), django_capture_on_commit_callbacks) == []

    services.webhook_subscription_update(subscription=subscription, is_active=True)

    subscription.refresh_from_db()
    assert (subscription.is_active, subscription.disabled_reason, subscription.failing_since) == (True, "", None)


def test_a_success_ends_the_run_of_failures(
    fast_schedule, user, httpserver, receiver_url, django_capture_on_commit_callbacks
):
    httpserver.expect_ordered_request("/hook").respond_with_data("no", status=500)
    httpserver.expect_ordered_request("/hook").respond_with_data("ok")
    subscription = webhook_subscription_for(user, receiver_url, ["job.completed"])
    (delivery,) = dispatch(event_for(echo_job(user=user)), django_capture_on_commit_callbacks)

    assert services.webhook_delivery_attempt(delivery_id=delivery.pk) == "failed"
    assert WebhookSubscription.objects.get(pk=subscription.pk).failing_since is not None
    assert services.webhook_delivery_attempt(delivery_id=delivery.pk) == "succeeded"

    assert WebhookSubscription.objects.get(pk=subscription.pk).failing_since is None


# -- the test send -------------------------------------------------------------------------------


def test_a_test_send_goes_now_once_and_answers_with_its_outcome(user, httpserver, receiver_url):
    httpserver.expect_request("/hook").respond_with_data("pong", status=200)
    subscription = webhook_subscription_for(user, receiver_url, ["job.completed"], is_active=False)

    delivery = services.webhook_subscription_test(subscription=subscription)

    assert (delivery.status, delivery.event_type, delivery.last_response_code) == ("succeeded", "webhook.test", 200)
    payload = verified(received(httpserver)[0], subscription.plain_secret)
    assert payload["data"]["subscription_id"] == str(subscription.pk)
    assert AuditLog.objects.filter(action="webhooks.subscription.test", resource_id=str(subscription.pk)).exists()


# -- the outbox ----------------------------------------------------------------------------------


def test_the_sweep_dispatches_events_the_broker_never_got(
    user, receiver_url, stub_broker, django_capture_on_commit_callbacks
):
    webhook_subscription_for(user, receiver_url, ["job.completed"])
    job = echo_job(user=user)
    stale = event_for(job)
    JobEvent.objects.filter(pk=stale.pk).update(created_at=timezone.now() - timedelta(seconds=30))
    fresh = event_for(echo_job(user=user))  # its message may still be on its way

    with django_capture_on_commit_callbacks(execute=True):
        dispatched, resent = services.webhook_outbox_resend()

    assert (dispatched, resent) == (1, 0)
    assert WebhookDelivery.objects.filter(event_id=stale.pk).count() == 1
    assert not WebhookDelivery.objects.filter(event_id=fresh.pk).exists()
    assert stub_broker.queues["webhooks"].qsize() == 1


def test_the_sweep_resends_an_overdue_attempt_once_per_period(
    user, receiver_url, stub_broker, django_capture_on_commit_callbacks
):
    webhook_subscription_for(user, receiver_url, ["job.completed"])
    (delivery,) = dispatch(event_for(echo_job(user=user)), django_capture_on_commit_callbacks)
    stub_broker.flush_all()
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now() - timedelta(minutes=5))

    assert services.webhook_outbox_resend() == (0, 1)
    assert services.webhook_outbox_resend() == (0, 0)

    (message,) = queued(stub_broker, "webhooks")
    assert message.args == (str(delivery.pk),)


def test_an_event_whose_hand_over_fails_stays_for_the_sweep(user, receiver_url, monkeypatch, caplog):
    def broker_down(*args, **kwargs):
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(webhooks_dispatch, "send", broker_down)
    event = event_for(echo_job(user=user))

    _dispatch([event.pk])

    event.refresh_from_db()
    assert event.dispatched_at is None
    assert "the sweep will" in caplog.text


def test_a_secret_no_key_decrypts_fails_the_attempt_until_the_keys_are_fixed(
    settings, user, httpserver, receiver_url, django_capture_on_commit_callbacks
):
    httpserver.expect_request("/hook").respond_with_data("ok")
    old_key = "Zm9yLXRlc3RzLW9ubHktYS1mZXJuZXQta2V5LTEyMzQ="
    new_key = "YW5vdGhlci10ZXN0LW9ubHktZmVybmV0LWtleS01Njc="
    settings.WEBHOOK_SECRET_KEYS = [old_key]
    subscription = webhook_subscription_for(user, receiver_url, ["job.completed"])
    (delivery,) = dispatch(event_for(echo_job(user=user)), django_capture_on_commit_callbacks)

    settings.WEBHOOK_SECRET_KEYS = [new_key]
    assert services.webhook_delivery_attempt(delivery_id=delivery.pk) == "failed"
    assert "decrypts" in WebhookDelivery.objects.get(pk=delivery.pk).last_error
    assert received(httpserver) == []

    settings.WEBHOOK_SECRET_KEYS = [new_key, old_key]  # a new key first, the old one still decrypting
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
    assert services.webhook_delivery_attempt(delivery_id=delivery.pk) == "succeeded"
    verified(received(httpserver)[0], subscription.plain_secret)


def _sample(name: str, **labels) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels) or 0.0
