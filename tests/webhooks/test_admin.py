"""The webhooks admin: secrets never shown, deliveries read-only, actions through the services; the job snippet."""

import pytest
from django.template.loader import render_to_string
from django.urls import reverse

from audit.models import AuditLog
from tests.credentials import webhook_subscription_for
from webhooks import services
from webhooks.models import DeliveryStatus, WebhookDelivery, WebhookSubscription
from webhooks.selectors import deliveries_for_job

from .conftest import echo_job, event_for, received, verified


@pytest.fixture
def subscription(user, receiver_url):
    return webhook_subscription_for(user, receiver_url, ["job.completed"])


@pytest.fixture
def delivery(subscription, user, django_capture_on_commit_callbacks):
    job = echo_job(user=user, webhook_url=subscription.url + "/callback")
    with django_capture_on_commit_callbacks(execute=True):
        services.webhook_events_dispatch(event_ids=[event_for(job).pk])
    return WebhookDelivery.objects.get(subscription=subscription)


def test_the_secret_is_never_shown(admin_client, subscription):
    stored = WebhookSubscription.objects.filter(pk=subscription.pk).values_list("secret", flat=True).get()
    pages = [
        reverse("admin:webhooks_webhooksubscription_changelist"),
        reverse("admin:webhooks_webhooksubscription_change", args=[subscription.pk]),
        reverse("admin:webhooks_webhooksubscription_delete", args=[subscription.pk]),
    ]
    for url in pages:
        response = admin_client.get(url)
        assert response.status_code == 200
        page = response.content.decode()
        assert subscription.plain_secret not in page and stored not in page
    assert subscription.url in admin_client.get(pages[1]).content.decode()


def test_saving_a_subscription_goes_through_the_service(admin_client, subscription):
    url = reverse("admin:webhooks_webhooksubscription_change", args=[subscription.pk])
    form = {"url": subscription.url, "events": '["job.failed"]', "description": "ops", "is_active": "on"}

    assert admin_client.post(url, form).status_code == 302

    subscription.refresh_from_db()
    assert (subscription.events, subscription.description) == (["job.failed"], "ops")
    assert AuditLog.objects.filter(action="admin.subscription.update", resource_id=str(subscription.pk)).exists()
    bad = admin_client.post(url, {**form, "events": '["job.nope"]'})
    assert bad.status_code == 200 and "Unknown event" in bad.content.decode()


def test_send_test_action_sends_webhook_test(admin_client, httpserver, subscription):
    httpserver.expect_request("/hook").respond_with_data("ok")

    response = admin_client.post(
        reverse("admin:webhooks_webhooksubscription_changelist"),
        {"action": "send_test", "_selected_action": [str(subscription.pk)]},
        follow=True,
    )

    assert "succeeded" in response.content.decode()
    assert verified(received(httpserver)[0], subscription.plain_secret)["type"] == "webhook.test"
    assert AuditLog.objects.filter(action="admin.subscription.test").exists()


def test_deliveries_are_read_only_and_filterable(admin_client, delivery):
    changelist = reverse("admin:webhooks_webhookdelivery_changelist")
    for query in (
        "",
        "?status__exact=pending",
        "?event_type__exact=job.completed",
        f"?subscription__id__exact={delivery.subscription_id}",
    ):
        response = admin_client.get(changelist + query)
        assert response.status_code == 200
        assert str(delivery.pk) in response.content.decode() or "job.completed" in response.content.decode()
    change = admin_client.get(reverse("admin:webhooks_webhookdelivery_change", args=[delivery.pk]))
    assert change.status_code == 200 and 'name="_save"' not in change.content.decode()
    assert admin_client.get(reverse("admin:webhooks_webhookdelivery_delete", args=[delivery.pk])).status_code == 403


def test_redeliver_action_makes_a_new_attempt(admin_client, delivery):
    WebhookDelivery.objects.filter(pk=delivery.pk).update(status=DeliveryStatus.DEAD, attempts=8, max_attempts=8)

    admin_client.post(
        reverse("admin:webhooks_webhookdelivery_changelist"),
        {"action": "redeliver", "_selected_action": [str(delivery.pk)]},
    )

    delivery.refresh_from_db()
    assert (delivery.status, delivery.max_attempts) == ("pending", 9)
    assert AuditLog.objects.filter(action="admin.delivery.redeliver", resource_id=str(delivery.pk)).exists()


def test_failed_deliveries_lists_only_retrying_and_dead_ones(admin_client, delivery):
    page = reverse("admin:webhooks_failedwebhookdelivery_changelist")
    assert "0 failed webhook deliveries" in admin_client.get(page).content.decode()

    WebhookDelivery.objects.filter(pk=delivery.pk).update(status=DeliveryStatus.DEAD)

    assert "1 failed webhook delivery" in admin_client.get(page).content.decode()


def test_the_jobs_admin_page_lists_its_deliveries_and_no_other_jobs(admin_client, delivery, subscription, user):
    other = echo_job(user=user)
    services.webhook_events_dispatch(event_ids=[event_for(other).pk])

    page = admin_client.get(reverse("admin:jobs_job_change", args=[delivery.job_id])).content.decode()

    mine = WebhookDelivery.objects.filter(job_id=delivery.job_id)
    assert mine.count() == 2  # the subscription's and the job's own callback
    for each in mine:
        assert reverse("admin:webhooks_webhookdelivery_change", args=[each.pk]) in page
    for each in WebhookDelivery.objects.filter(job_id=other.pk):
        assert reverse("admin:webhooks_webhookdelivery_change", args=[each.pk]) not in page
    assert "job callback" in page
    assert subscription.secret not in page


def test_a_staff_owner_sees_on_the_job_page_only_the_deliveries_the_api_shows_them(delivery, user, receiver_url):
    """An operator's every-job subscription received the job's event too; its owner's page does not show it."""
    from tests.admin.conftest import client_for
    from tests.conftest import grant_role
    from tests.factories import UserFactory

    operator = grant_role(UserFactory(username="ops"), "operator")
    theirs = webhook_subscription_for(operator, receiver_url + "/ops", ["job.completed"], all_jobs=True)
    services.webhook_events_dispatch(event_ids=[event_for(delivery.job).pk])
    others = WebhookDelivery.objects.get(subscription=theirs, job_id=delivery.job_id)
    user.is_staff = True
    user.save(update_fields=["is_staff"])

    page = client_for(user).get(reverse("admin:jobs_job_change", args=[delivery.job_id])).content.decode()

    assert reverse("admin:webhooks_webhookdelivery_change", args=[delivery.pk]) in page
    assert reverse("admin:webhooks_webhookdelivery_change", args=[others.pk]) not in page


def test_the_job_page_snippet_lists_the_jobs_deliveries(delivery):
    html = render_to_string("webhooks/job_deliveries.html", {"deliveries": deliveries_for_job(delivery.job_id)})

    assert html.count("job.completed") == 2  # the subscription's and the callback's
    assert reverse("admin:webhooks_webhookdelivery_change", args=[delivery.pk]) in html
    assert "job callback" in html
    assert "No webhook deliveries" in render_to_string("webhooks/job_deliveries.html", {"deliveries": []})
