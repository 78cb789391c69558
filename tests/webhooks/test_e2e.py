"""Webhooks end to end: gunicorn, a real Dramatiq worker on the database broker, receivers on 127.0.0.1.

Every request a receiver gets is verified with the `standardwebhooks` library.
The retry schedule is shrunk to fractions of a second through the worker's
environment.
"""

import threading
import time

import pytest
import requests
from werkzeug import Response

from jobs.models import JobEvent
from tests import credentials
from tests.conftest import grant_role
from tests.e2e.conftest import child_env, database_url, web_server, worker
from tests.factories import UserFactory
from webhooks.models import WebhookDelivery

from .conftest import body_of, received, verified

pytestmark = pytest.mark.e2e

SCHEDULE = "0,0.3,0.3,0.3"  # four attempts, a third of a second apart


@pytest.fixture
def site(transactional_db, demo_pipelines):
    """The web server and a worker, sharing the test database and the database broker."""
    env = child_env(
        DATABASE_URL=database_url(),
        DRAMATIQ_BROKER_URL="db",
        ALLOW_PRIVATE_NETWORK_URLS="1",
        WEBHOOK_RETRY_SCHEDULE_SECONDS=SCHEDULE,
        WEBHOOK_RETRY_JITTER="0",
    )
    with web_server(env) as url, worker(env, threads=4):
        yield url


def key_headers(username: str) -> dict:
    """An API key of a new submitter, as `requests` headers."""
    user = grant_role(UserFactory(username=username), "submitter")
    header = credentials.api_key_for(user)["HTTP_AUTHORIZATION"]
    return {"Authorization": header}


def subscribe(site, headers, url, events) -> dict:
    response = requests.post(
        f"{site}/api/v1/webhooks/", json={"url": url, "events": events}, headers=headers, timeout=10
    )
    assert response.status_code == 201, response.text
    body = response.json()
    credentials.remember(body["secret"])
    return body


def submit(site, headers, **extra) -> str:
    body = {"pipeline": "sample_task", "input_data": {"n": 1}, **extra}
    response = requests.post(f"{site}/api/v1/jobs/", json=body, headers=headers, timeout=10)
    assert response.status_code == 201, response.text
    return response.json()["job_id"]


def wait_for(condition, what: str, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"still waiting for {what} after {timeout} s")


def at(httpserver, path) -> list:
    return [request for request in received(httpserver) if request.path == path]


def test_a_jobs_events_reach_its_owners_subscription_and_its_callback_and_no_one_else(site, httpserver):
    for path in ("/alice", "/bob", "/callback"):
        httpserver.expect_request(path).respond_with_data("", status=204)
    base = f"http://127.0.0.1:{httpserver.port}"
    alice, bob = key_headers("alice"), key_headers("bob")
    subscription = subscribe(site, alice, base + "/alice", ["job.created", "job.started", "job.completed"])
    subscribe(site, bob, base + "/bob", ["job.created", "job.started", "job.completed", "job.failed"])
    callback_secret = credentials.remember("whsec_" + "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTEy")

    job_id = submit(site, alice, webhook_url=base + "/callback", webhook_secret=callback_secret)

    wait_for(lambda: len(at(httpserver, "/alice")) == 3 and len(at(httpserver, "/callback")) == 1, "deliveries")
    payloads = [verified(request, subscription["secret"]) for request in at(httpserver, "/alice")]
    assert sorted(p["type"] for p in payloads) == ["job.completed", "job.created", "job.started"]
    assert {p["data"]["job_id"] for p in payloads} == {job_id}
    events = dict(JobEvent.objects.filter(job_id=job_id).values_list("type", "id"))
    for request, payload in zip(at(httpserver, "/alice"), payloads, strict=True):
        assert request.headers["webhook-id"] == str(events[payload["type"]])
    (callback,) = at(httpserver, "/callback")
    assert verified(callback, callback_secret)["type"] == "job.completed"
    assert body_of(callback)["data"]["status"] == "completed"
    # Another user's subscription never hears of alice's job (its own events would have come by now).
    assert at(httpserver, "/bob") == []
    listed = requests.get(f"{site}/api/v1/jobs/{job_id}/deliveries/", headers=alice, timeout=10).json()
    assert {(d["target"], d["status"]) for d in listed["results"]} == {
        ("subscription", "succeeded"),
        ("job_callback", "succeeded"),
    }
    assert listed["count"] == 4


def test_a_receiver_failing_three_times_gets_the_event_on_the_fourth_attempt(site, httpserver):
    answers = iter([500, 500, 500])
    httpserver.expect_request("/flaky").respond_with_handler(lambda request: Response("", status=next(answers, 200)))
    alice = key_headers("alice")
    subscription = subscribe(site, alice, f"http://127.0.0.1:{httpserver.port}/flaky", ["job.completed"])

    job_id = submit(site, alice)

    wait_for(lambda: WebhookDelivery.objects.filter(job_id=job_id, status="succeeded").exists(), "the delivery")
    delivery = WebhookDelivery.objects.get(job_id=job_id)
    assert delivery.attempts == 4
    attempts = list(delivery.attempt_log.order_by("number").values_list("outcome", "response_code"))
    assert attempts == [("http_error", 500)] * 3 + [("succeeded", 200)]
    requests_made = at(httpserver, "/flaky")
    assert len(requests_made) == 4
    assert {r.headers["webhook-id"] for r in requests_made} == {str(delivery.event_id)}
    for request in requests_made:
        verified(request, subscription["secret"])


def test_a_receiver_down_for_the_whole_schedule_ends_dead_and_a_redelivery_after_the_fix_succeeds(site, httpserver):
    down = threading.Event()
    down.set()
    httpserver.expect_request("/down").respond_with_handler(
        lambda request: Response("unavailable", status=503 if down.is_set() else 200)
    )
    alice = key_headers("alice")
    subscription = subscribe(site, alice, f"http://127.0.0.1:{httpserver.port}/down", ["job.completed"])
    job_id = submit(site, alice)
    wait_for(lambda: WebhookDelivery.objects.filter(job_id=job_id, status="dead").exists(), "the delivery to die")
    delivery = WebhookDelivery.objects.get(job_id=job_id)
    assert (delivery.attempts, delivery.last_response_code) == (4, 503)

    down.clear()
    response = requests.post(f"{site}/api/v1/webhooks/deliveries/{delivery.pk}/redeliver/", headers=alice, timeout=10)
    assert response.status_code == 202, response.text

    wait_for(lambda: WebhookDelivery.objects.filter(pk=delivery.pk, status="succeeded").exists(), "the redelivery")
    last = at(httpserver, "/down")[-1]
    assert last.headers["webhook-id"] == str(delivery.event_id)
    assert verified(last, subscription["secret"])["data"]["job_id"] == job_id
    assert len(at(httpserver, "/down")) == 5
