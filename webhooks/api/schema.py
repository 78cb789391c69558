"""The webhook payload in the OpenAPI schema: its shape and an example per event."""

from drf_spectacular.utils import OpenApiExample
from rest_framework import serializers

from ..models import WebhookEventType

JOB_ID = "0b5c6d3e-6f1a-4c1e-9a57-3f2f4d1c8e21"
USER_ID = "7d9f2a4b-1c3e-4f5a-8b6c-9d0e1f2a3b4c"


class WebhookJobDataSerializer(serializers.Serializer):
    """`data` of a job event: the job as the event left it."""

    job_id = serializers.UUIDField()
    workflow_name = serializers.CharField(help_text="The pipeline's name.")
    status = serializers.CharField(help_text="The job's status right after the event.")
    priority = serializers.IntegerField()
    user_id = serializers.UUIDField(allow_null=True)
    username = serializers.CharField(allow_null=True)
    action = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    completed_at = serializers.DateTimeField(allow_null=True, help_text="Set on completed, failed and cancelled.")
    duration_ms = serializers.IntegerField(allow_null=True)
    error_message = serializers.CharField(allow_null=True, help_text="Set on failed and retrying.")
    pipeline_version = serializers.IntegerField()
    attempts = serializers.IntegerField(help_text="The attempt the event belongs to (0 before the first).")
    max_attempts = serializers.IntegerField()
    result_url = serializers.CharField(allow_null=True, help_text="Set on job.completed.")


class WebhookPayloadSerializer(serializers.Serializer):
    """The body of every delivery (Standard Webhooks: type, timestamp, data)."""

    type = serializers.ChoiceField(choices=WebhookEventType.values)
    timestamp = serializers.DateTimeField(help_text="When the change happened.")
    data = WebhookJobDataSerializer(help_text="For webhook.test: {subscription_id, message}.")


def _job(event_type: str, changes: dict | None = None) -> dict:
    data = {
        "job_id": JOB_ID,
        "workflow_name": "text-analysis",
        "status": "queued",
        "priority": 5,
        "user_id": USER_ID,
        "username": "alice",
        "action": "summarize",
        "created_at": "2026-12-01T10:00:00.120Z",
        "started_at": None,
        "completed_at": None,
        "duration_ms": None,
        "error_message": None,
        "pipeline_version": 3,
        "attempts": 0,
        "max_attempts": 3,
        "result_url": None,
        **(changes or {}),
    }
    timestamps = {
        "job.created": "2026-12-01T10:00:00.120Z",
        "job.started": "2026-12-01T10:00:00.310Z",
        "job.retrying": "2026-12-01T10:00:01.020Z",
        "job.completed": "2026-12-01T10:00:02.450Z",
        "job.failed": "2026-12-01T10:00:02.450Z",
        "job.cancelled": "2026-12-01T10:00:01.500Z",
    }
    return {"type": event_type, "timestamp": timestamps[event_type], "data": data}


STARTED = {"status": "processing", "started_at": "2026-12-01T10:00:00.310Z", "attempts": 1}
PAYLOAD_EXAMPLES = {
    "job.created": _job("job.created"),
    "job.started": _job("job.started", STARTED),
    "job.retrying": _job(
        "job.retrying",
        {
            **STARTED,
            "status": "retrying",
            "error_message": "Stage 'fetch' failed (attempt 1 of 4): HTTP 503 from https://api.example.com/greet",
        },
    ),
    "job.completed": _job(
        "job.completed",
        {
            **STARTED,
            "status": "completed",
            "completed_at": "2026-12-01T10:00:02.450Z",
            "duration_ms": 2140,
            "result_url": f"https://jobs.example.com/api/v1/jobs/{JOB_ID}/result/",
        },
    ),
    "job.failed": _job(
        "job.failed",
        {
            **STARTED,
            "attempts": 3,
            "status": "failed",
            "completed_at": "2026-12-01T10:00:02.450Z",
            "duration_ms": 2140,
            "error_message": "Stage 'fetch' failed (attempt 4 of 4): HTTP 503 from https://api.example.com/greet",
        },
    ),
    "job.cancelled": _job(
        "job.cancelled",
        {**STARTED, "status": "cancelled", "completed_at": "2026-12-01T10:00:01.500Z", "duration_ms": 1190},
    ),
    "webhook.test": {
        "type": "webhook.test",
        "timestamp": "2026-12-01T10:05:00Z",
        "data": {"subscription_id": "5e0c1a2b-3d4e-4f60-8a9b-0c1d2e3f4a5b", "message": "A test event from jobsite."},
    },
}


def delivery_examples(*, page: bool = False) -> list[OpenApiExample]:
    """A delivery per event type, each with its payload; with `page`, each as a one-delivery page of a list."""
    examples = []
    for event_type, payload in PAYLOAD_EXAMPLES.items():
        callback = event_type in ("job.completed", "job.failed", "job.cancelled")
        delivery = {
            "id": "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d",
            "subscription_id": None if callback else "5e0c1a2b-3d4e-4f60-8a9b-0c1d2e3f4a5b",
            "job_id": None if event_type == "webhook.test" else JOB_ID,
            "target": "job_callback" if callback else "subscription",
            "event_id": "3c2b1a09-8f7e-4d6c-9b5a-493827160544",
            "event_type": event_type,
            "event_at": payload["timestamp"],
            "url": "https://hooks.example.com/jobsite",
            "status": "succeeded",
            "attempts": 1,
            "max_attempts": 8,
            "next_attempt_at": None,
            "last_response_code": 204,
            "last_error": "",
            "response_excerpt": "",
            "duration_ms": 38,
            "created_at": payload["timestamp"],
            "delivered_at": payload["timestamp"],
            "payload": payload,
            "attempt_log": [
                {
                    "number": 1,
                    "started_at": payload["timestamp"],
                    "duration_ms": 38,
                    "url": "https://hooks.example.com/jobsite",
                    "succeeded": True,
                    "outcome": "succeeded",
                    "response_code": 204,
                    "error": "",
                    "response_excerpt": "",
                }
            ],
        }
        value = {"count": 1, "count_estimated": False, "next": None, "previous": None, "results": [delivery]}
        examples.append(
            OpenApiExample(
                event_type, summary=f"A {event_type} delivery", response_only=True, value=value if page else delivery
            )
        )
    return examples
