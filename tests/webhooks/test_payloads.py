"""The payload every delivery sends, per event, built from the event and its job."""

import pytest
from django.utils import timezone

from jobs.models import JobEventType, JobStatus
from tests.contracts import SEED_JOB_SUMMARY
from webhooks.api.schema import PAYLOAD_EXAMPLES
from webhooks.payloads import event_payload

from .conftest import echo_job, event_for

# The seed's JobSummary and what a payload adds (no progress or queue time: an event is a moment).
SUMMARY_FIELDS = {*SEED_JOB_SUMMARY, "pipeline_version", "attempts", "max_attempts", "result_url"}


@pytest.fixture
def finished_job(user):
    job = echo_job(user=user, status=JobStatus.COMPLETED)
    job.started_at = job.completed_at = timezone.now()
    job.duration_ms, job.attempts, job.action = 42, 1, ""
    job.save()
    return job


@pytest.mark.parametrize("event_type", list(JobEventType))
def test_every_event_has_the_same_shape_as_its_documented_example(event_type, finished_job):
    event = event_for(finished_job, event_type, attempt=1)

    payload = event_payload(event, finished_job)

    assert set(payload) == {"type", "timestamp", "data"}
    assert payload["type"] == event_type
    assert set(payload["data"]) == SUMMARY_FIELDS == set(PAYLOAD_EXAMPLES[event_type]["data"])
    assert payload["timestamp"] == event.created_at.isoformat().replace("+00:00", "Z")


def test_the_status_and_times_are_those_the_event_left(finished_job, user):
    started = event_payload(event_for(finished_job, JobEventType.STARTED, attempt=1), finished_job)["data"]
    completed = event_payload(event_for(finished_job, JobEventType.COMPLETED, attempt=1), finished_job)["data"]

    assert (started["status"], started["completed_at"], started["duration_ms"], started["result_url"]) == (
        "processing",
        None,
        None,
        None,
    )
    assert (completed["status"], completed["duration_ms"]) == ("completed", 42)
    assert completed["result_url"] == f"/api/v1/jobs/{finished_job.pk}/result/"
    assert (completed["user_id"], completed["username"], completed["action"]) == (str(user.pk), "alice", None)


def test_a_failure_carries_its_error_and_result_urls_can_be_absolute(settings, finished_job):
    settings.WEBHOOK_PUBLIC_BASE_URL = "https://jobs.example.com"
    failed = event_payload(event_for(finished_job, JobEventType.FAILED, error="Stage 'x' failed"), finished_job)
    completed = event_payload(event_for(finished_job, JobEventType.COMPLETED), finished_job)

    assert (failed["data"]["status"], failed["data"]["error_message"]) == ("failed", "Stage 'x' failed")
    assert completed["data"]["result_url"] == f"https://jobs.example.com/api/v1/jobs/{finished_job.pk}/result/"
    created = event_payload(event_for(finished_job, JobEventType.CREATED, status="queued"), finished_job)["data"]
    assert (created["status"], created["attempts"], created["started_at"]) == ("queued", 0, None)


def test_the_readme_shows_every_events_example_as_the_schema_does():
    """The README's full example of each event is the OpenAPI schema's, so neither drifts from the payloads."""
    import json
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    shown = dict(re.findall(r"^`([a-z.]+)`:\n\n```json\n(.*?)\n```", readme, flags=re.M | re.S))

    assert set(shown) == set(PAYLOAD_EXAMPLES)
    for event_type, example in PAYLOAD_EXAMPLES.items():
        assert json.loads(shown[event_type]) == example, event_type
