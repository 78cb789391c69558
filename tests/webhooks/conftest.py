"""Receivers on 127.0.0.1, verified as a real receiver would: with the `standardwebhooks` library."""

import json

import pytest
from standardwebhooks.webhooks import Webhook

from jobs.models import JobEvent, JobEventType, JobStatus
from jobs.run import job_run
from tests.factories import JobFactory, PipelineFactory


@pytest.fixture(autouse=True)
def private_allowed(settings):
    """Receivers run on 127.0.0.1: private addresses are allowed unless a test says otherwise."""
    settings.ALLOW_PRIVATE_NETWORK_URLS = True


@pytest.fixture
def receiver_url(httpserver):
    return f"http://127.0.0.1:{httpserver.port}/hook"


def verified(request, secret) -> dict:
    """The payload of a received request, after checking its signature as a receiver does (raises otherwise)."""
    key = secret if secret.startswith("whsec_") else secret.encode()
    return Webhook(key).verify(request.get_data(as_text=True), dict(request.headers))


def received(httpserver) -> list:
    """The requests the receiver got, in order."""
    return [request for request, _ in httpserver.log]


def echo_job(*, user=None, webhook_url="", webhook_secret="", status=JobStatus.QUEUED):
    pipeline = PipelineFactory(config={"stages": [{"name": "echo", "type": "echo"}]})
    return JobFactory(
        pipeline=pipeline,
        user_id=user.pk if user else None,
        status=status,
        webhook_url=webhook_url,
        webhook_secret=webhook_secret,
        input_data={"n": 1},
        username="alice",
    )


def run_to_completion(job) -> list[JobEvent]:
    """Run the job on this thread; return its events (started, completed)."""
    assert job_run(job_id=str(job.pk)) == JobStatus.COMPLETED
    return list(JobEvent.objects.filter(job=job).order_by("created_at"))


def event_for(job, event_type=JobEventType.COMPLETED, **data) -> JobEvent:
    """An event of `job` with `notify` set, as if just committed."""
    from django.utils import timezone

    return JobEvent.objects.create(job=job, type=event_type, data=data, notify=True, created_at=timezone.now())


def body_of(request) -> dict:
    return json.loads(request.get_data(as_text=True))
