"""The deliveries admin in a real headless Chromium: an operator finds a dead delivery and redelivers it."""

import shutil

import pytest

from tests.credentials import webhook_subscription_for
from tests.factories import UserFactory
from webhooks import services
from webhooks.models import DeliveryStatus, WebhookDelivery

from .conftest import echo_job, event_for

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
PASSWORD = "correct horse battery staple"


@pytest.fixture
def browser_page(monkeypatch):
    sync_api = pytest.importorskip("playwright.sync_api")
    if not shutil.which(CHROMIUM):
        pytest.skip("Chromium is not installed")
    # Playwright's sync API runs an event loop on this thread; the test's ORM calls are still synchronous.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
        )
        try:
            yield browser.new_page()
        finally:
            browser.close()


@pytest.mark.django_db(transaction=True)
def test_an_operator_redelivers_a_dead_delivery_from_the_failed_deliveries_page(live_server, browser_page, user):
    UserFactory(username="root", is_staff=True, is_superuser=True)
    subscription = webhook_subscription_for(user, "http://127.0.0.1:9/hook", ["job.completed"])
    (delivery_id,) = services.webhook_events_dispatch(event_ids=[event_for(echo_job(user=user)).pk])
    WebhookDelivery.objects.filter(pk=delivery_id).update(status=DeliveryStatus.DEAD, attempts=8, max_attempts=8)
    page = browser_page

    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "root")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.goto(f"{live_server.url}/admin/webhooks/failedwebhookdelivery/")
    assert "1 failed webhook delivery" in page.content()
    assert subscription.plain_secret not in page.content()
    page.check("input.action-select")
    page.select_option("select[name=action]", "redeliver")
    page.click("button[name=index]")

    assert "1 delivery(ies) sent again." in page.inner_text("ul.messagelist")
    assert WebhookDelivery.objects.get(pk=delivery_id).status == DeliveryStatus.PENDING
