"""The webhooks API: subscriptions, their deliveries, test sends, rotation, redelivery, a job's deliveries."""

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from audit.models import AuditLog
from tests import credentials
from tests.credentials import remember, webhook_subscription_for
from tests.test_outbound import fake_dns
from webhooks import services
from webhooks.models import DeliveryStatus, WebhookDelivery, WebhookSubscription

from .conftest import echo_job, event_for, received, verified

BASE = "/api/v1/webhooks/"


def client_for(user) -> APIClient:
    client = APIClient()
    client.credentials(**credentials.jwt_for(user))
    return client


@pytest.fixture
def alice(user):
    return client_for(user)


@pytest.fixture
def bob(other_user):
    return client_for(other_user)


def create(client, url, events=("job.completed",), **extra):
    response = client.post(BASE, {"url": url, "events": list(events), **extra}, format="json")
    if response.status_code == 201:
        remember(response.json()["secret"])
    return response


def deliveries_of(subscription, *events, capture):
    """Dispatch a completed event of a fresh job of the subscription's owner; return the deliveries."""
    job = echo_job(user=subscription.user)
    with capture(execute=True):
        ids = services.webhook_events_dispatch(event_ids=[event_for(job, *events).pk])
    return job, list(WebhookDelivery.objects.filter(pk__in=ids))


# -- creating ---------------------------------------------------------------------------------


def test_create_shows_the_generated_secret_once_and_never_again(alice, receiver_url):
    response = create(alice, receiver_url, ["job.completed", "job.failed"], description="billing")

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["secret"].startswith("whsec_")
    assert (body["url"], body["events"], body["is_active"], body["all_jobs"]) == (
        receiver_url,
        ["job.completed", "job.failed"],
        True,
        False,
    )
    for page in (alice.get(BASE + f"{body['id']}/"), alice.get(BASE)):
        assert page.status_code == 200
        assert body["secret"] not in page.content.decode()
        assert "secret" not in (page.json() if "id" in page.json() else page.json()["results"][0])


def test_a_supplied_secret_is_kept_and_checked(alice, receiver_url):
    good = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    assert create(alice, receiver_url, secret=good).json()["secret"] == good

    response = create(alice, receiver_url, secret="hunter2-hunter2")

    assert response.status_code == 400
    assert list(response.json()["details"]) == ["secret"]


@pytest.mark.parametrize(
    "url",
    [
        "ftp://127.0.0.1/hook",
        "http://user:pass@127.0.0.1/hook",
        "http://127.0.0.1/hook?token=abc",
        "not a url",
        "file:///etc/passwd",
    ],
)
def test_bad_urls_are_400_naming_the_url(alice, url):
    response = create(alice, url)

    assert response.status_code == 400
    assert list(response.json()["details"]) == ["url"]


def test_a_private_address_is_refused_at_registration_unless_allowed(settings, alice, receiver_url):
    settings.ALLOW_PRIVATE_NETWORK_URLS = False

    response = create(alice, receiver_url)

    assert response.status_code == 400
    assert "not a public address" in response.json()["details"]["url"][0]
    assert not WebhookSubscription.objects.exists()


def test_a_name_resolving_to_a_private_address_is_refused_at_registration(settings, monkeypatch, alice):
    settings.ALLOW_PRIVATE_NETWORK_URLS = False
    fake_dns(monkeypatch, {"intranet.example": lambda: ["10.1.2.3"]})

    response = create(alice, "https://intranet.example/hook")

    assert response.status_code == 400
    assert "10.1.2.3" in response.json()["details"]["url"][0]


def test_unknown_events_are_400_listing_the_valid_ones(alice, receiver_url):
    response = create(alice, receiver_url, ["job.completed", "job.exploded"])

    assert response.status_code == 400
    details = response.json()["details"]
    assert "job.exploded" in details["events"][0]
    assert details["valid_values"] == [
        "job.created",
        "job.started",
        "job.retrying",
        "job.completed",
        "job.failed",
        "job.cancelled",
    ]


def test_an_empty_event_list_is_400(alice, receiver_url):
    assert create(alice, receiver_url, []).status_code == 400


def test_only_operators_and_the_service_subscribe_to_every_job(alice, operator_user, service_client, receiver_url):
    refused = create(alice, receiver_url, all_jobs=True)
    assert refused.status_code == 403
    assert refused.json()["details"] == {"all_jobs": ["Must be false or omitted."]}

    assert create(client_for(operator_user), receiver_url, all_jobs=True).json()["all_jobs"] is True
    service = create(service_client, receiver_url)
    assert (service.json()["all_jobs"], service.json()["user_id"]) == (True, None)


def test_an_operator_cannot_make_a_submitters_subscription_receive_every_job(alice, operator_user, receiver_url):
    sub = create(alice, receiver_url).json()

    response = client_for(operator_user).patch(BASE + f"{sub['id']}/", {"all_jobs": True}, format="json")

    assert response.status_code == 400
    assert list(response.json()["details"]) == ["all_jobs"]
    assert WebhookSubscription.objects.get(pk=sub["id"]).all_jobs is False


def test_create_is_audited_without_the_secret(alice, receiver_url):
    body = create(alice, receiver_url).json()

    row = AuditLog.objects.get(action="webhooks.subscription.create", resource_id=body["id"])
    assert body["secret"] not in str(row.request_details)
    assert row.request_details["operation"]["events"] == ["job.completed"]


# -- reading, changing, deleting ----------------------------------------------------------------


def test_a_user_lists_only_their_subscriptions_and_anothers_is_404(alice, bob, operator_user, receiver_url):
    mine = create(alice, receiver_url).json()
    theirs = create(bob, receiver_url).json()

    assert [s["id"] for s in alice.get(BASE).json()["results"]] == [mine["id"]]
    for method, suffix in [
        ("get", ""),
        ("patch", ""),
        ("delete", ""),
        ("get", "deliveries/"),
        ("post", "test/"),
        ("post", "rotate-secret/"),
    ]:
        response = getattr(alice, method)(BASE + f"{theirs['id']}/{suffix}", {}, format="json")
        assert response.status_code == 404, (method, suffix)
    assert {s["id"] for s in client_for(operator_user).get(BASE).json()["results"]} == {mine["id"], theirs["id"]}


def test_patch_changes_a_subscription_and_is_audited(alice, receiver_url):
    sub = create(alice, receiver_url).json()

    response = alice.patch(BASE + f"{sub['id']}/", {"events": ["job.failed"], "description": "x"}, format="json")

    assert response.status_code == 200
    assert (response.json()["events"], response.json()["description"], response.json()["url"]) == (
        ["job.failed"],
        "x",
        receiver_url,
    )
    row = AuditLog.objects.get(action="webhooks.subscription.update", resource_id=sub["id"])
    assert row.request_details["operation"] == {"events": ["job.failed"], "description": "x"}


def test_patch_refuses_a_bad_url_and_unknown_fields_change_nothing(alice, receiver_url):
    sub = create(alice, receiver_url).json()

    assert alice.patch(BASE + f"{sub['id']}/", {"url": "gopher://x"}, format="json").status_code == 400
    assert alice.patch(BASE + f"{sub['id']}/", {"events": ["nope"]}, format="json").status_code == 400

    assert WebhookSubscription.objects.get(pk=sub["id"]).url == receiver_url


def test_the_owner_re_enables_a_disabled_subscription(alice, user, receiver_url):
    sub = create(alice, receiver_url).json()
    WebhookSubscription.objects.filter(pk=sub["id"]).update(
        is_active=False, disabled_reason="Every delivery failed since ...", failing_since=timezone.now()
    )
    assert alice.get(BASE + f"{sub['id']}/").json()["disabled_reason"].startswith("Every delivery failed")

    response = alice.patch(BASE + f"{sub['id']}/", {"is_active": True}, format="json")

    assert (response.json()["is_active"], response.json()["disabled_reason"]) == (True, "")
    assert AuditLog.objects.filter(action="webhooks.subscription.enable", resource_id=sub["id"]).exists()


def test_delete_removes_the_subscription_and_its_deliveries(
    alice, user, receiver_url, django_capture_on_commit_callbacks
):
    sub = create(alice, receiver_url).json()
    deliveries_of(WebhookSubscription.objects.get(pk=sub["id"]), capture=django_capture_on_commit_callbacks)

    assert alice.delete(BASE + f"{sub['id']}/").status_code == 204

    assert not WebhookSubscription.objects.exists() and not WebhookDelivery.objects.exists()
    assert AuditLog.objects.filter(action="webhooks.subscription.delete", resource_id=sub["id"]).exists()


def test_rotate_secret_returns_a_new_secret_once(alice, receiver_url):
    sub = create(alice, receiver_url).json()

    response = alice.post(BASE + f"{sub['id']}/rotate-secret/")

    assert response.status_code == 200
    body = response.json()
    remember(body["secret"])
    assert body["secret"].startswith("whsec_") and body["secret"] != sub["secret"]
    assert (
        body["previous_secret_valid_until"] == alice.get(BASE + f"{sub['id']}/").json()["previous_secret_valid_until"]
    )
    row = AuditLog.objects.get(action="webhooks.subscription.rotate_secret", resource_id=sub["id"])
    assert body["secret"] not in str(row.request_details) and sub["secret"] not in str(row.request_details)


# -- test sends and deliveries -------------------------------------------------------------------


def test_the_test_endpoint_sends_now_and_answers_with_the_outcome(alice, httpserver, receiver_url):
    httpserver.expect_request("/hook").respond_with_data("nope", status=410)
    sub = create(alice, receiver_url).json()

    response = alice.post(BASE + f"{sub['id']}/test/")

    assert response.status_code == 200
    body = response.json()
    assert (body["event_type"], body["status"], body["last_response_code"], body["response_excerpt"]) == (
        "webhook.test",
        "dead",
        410,
        "nope",
    )
    assert body["attempt_log"][0]["outcome"] == "http_error"
    assert verified(received(httpserver)[0], sub["secret"])["type"] == "webhook.test"


def test_deliveries_are_listed_with_their_attempts_and_filters(
    alice, user, httpserver, receiver_url, django_capture_on_commit_callbacks
):
    httpserver.expect_request("/hook").respond_with_data("ok")
    sub = create(alice, receiver_url, ["job.completed", "job.failed"]).json()
    subscription = WebhookSubscription.objects.get(pk=sub["id"])
    _, (completed,) = deliveries_of(subscription, capture=django_capture_on_commit_callbacks)
    deliveries_of(subscription, "job.failed", capture=django_capture_on_commit_callbacks)
    services.webhook_delivery_attempt(delivery_id=completed.pk)
    url = BASE + f"{sub['id']}/deliveries/"

    everything = alice.get(url).json()
    assert everything["count"] == 2
    assert alice.get(url, {"status": "succeeded"}).json()["results"][0]["attempt_log"][0]["response_code"] == 200
    assert [d["event_type"] for d in alice.get(url, {"event_type": "job.failed"}).json()["results"]] == ["job.failed"]
    assert alice.get(url, {"status": "pending,succeeded"}).json()["count"] == 2
    assert alice.get(url, {"created_after": "2999-01-01T00:00:00Z"}).json()["count"] == 0
    assert alice.get(url, {"limit": 1}).json()["next"] is not None

    bad = alice.get(url, {"status": "lost"})
    assert bad.status_code == 400 and bad.json()["details"]["valid_values"] == list(DeliveryStatus.values)
    unknown = alice.get(url, {"page": 2})
    assert unknown.status_code == 400 and "page" in unknown.json()["details"]


def test_redeliver_makes_a_new_attempt_of_a_finished_delivery(
    alice, bob, user, receiver_url, stub_broker, django_capture_on_commit_callbacks
):
    sub = create(alice, receiver_url).json()
    _, (delivery,) = deliveries_of(
        WebhookSubscription.objects.get(pk=sub["id"]), capture=django_capture_on_commit_callbacks
    )
    WebhookDelivery.objects.filter(pk=delivery.pk).update(status=DeliveryStatus.DEAD, attempts=8, max_attempts=8)
    stub_broker.flush_all()

    assert bob.post(f"{BASE}deliveries/{delivery.pk}/redeliver/").status_code == 404
    with django_capture_on_commit_callbacks(execute=True):
        response = alice.post(f"{BASE}deliveries/{delivery.pk}/redeliver/")

    assert response.status_code == 202
    assert (response.json()["status"], response.json()["max_attempts"]) == ("pending", 9)
    assert stub_broker.queues["webhooks"].qsize() == 1
    assert AuditLog.objects.filter(action="webhooks.delivery.redeliver", resource_id=str(delivery.pk)).exists()


def test_a_jobs_deliveries_include_its_callback_and_never_anothers_subscription(
    alice, user, operator_user, receiver_url, django_capture_on_commit_callbacks
):
    mine = webhook_subscription_for(user, receiver_url, ["job.completed"])
    webhook_subscription_for(operator_user, receiver_url + "/ops", ["job.completed"], all_jobs=True)
    job = echo_job(user=user, webhook_url=receiver_url + "/callback")
    with django_capture_on_commit_callbacks(execute=True):
        services.webhook_events_dispatch(event_ids=[event_for(job).pk])

    response = alice.get(f"/api/v1/jobs/{job.pk}/deliveries/")

    assert response.status_code == 200
    targets = {(d["target"], d["subscription_id"]) for d in response.json()["results"]}
    assert targets == {("subscription", str(mine.pk)), ("job_callback", None)}
    operator_view = client_for(operator_user).get(f"/api/v1/jobs/{job.pk}/deliveries/").json()
    assert operator_view["count"] == 3
    assert client_for(operator_user).get(f"{BASE}deliveries/", {"job": str(job.pk)}).json()["count"] == 3
    assert alice.get(f"{BASE}deliveries/").json()["count"] == 2


def test_another_users_job_deliveries_are_404(bob, user):
    job = echo_job(user=user)

    assert bob.get(f"/api/v1/jobs/{job.pk}/deliveries/").status_code == 404


def test_a_keys_webhooks_scopes_split_reading_from_writing(user, receiver_url):
    reader, writer = APIClient(), APIClient()
    reader.credentials(**credentials.api_key_for(user, scopes=["webhooks:read"]))
    writer.credentials(**credentials.api_key_for(user, scopes=["webhooks:write"]))
    job = echo_job(user=user)

    assert create(reader, receiver_url).status_code == 403
    created = create(writer, receiver_url)
    assert created.status_code == 201
    assert writer.get(BASE).status_code == 403
    assert reader.get(BASE).json()["count"] == 1
    assert reader.get(f"/api/v1/jobs/{job.pk}/deliveries/").status_code == 200
    rotated = writer.post(BASE + f"{created.json()['id']}/rotate-secret/")
    assert rotated.status_code == 200
    remember(rotated.json()["secret"])
    assert reader.post(BASE + f"{created.json()['id']}/rotate-secret/").status_code == 403
