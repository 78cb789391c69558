"""GET /api/v1/jobs/stats/ through the API."""

from rest_framework.test import APIClient

from jobs.models import JobStatus
from tests import credentials
from tests.factories import JobFactory

STATS = "/api/v1/jobs/stats/"


def test_operator_sees_every_job_and_the_queue_depths(operator_user, user, other_user, stub_broker):
    JobFactory(user_id=user.pk, status=JobStatus.COMPLETED, duration_ms=10)
    JobFactory(user_id=other_user.pk, status=JobStatus.FAILED)
    stub_broker.declare_queue("jobs")
    body = APIClient().get(STATS, **credentials.jwt_for(operator_user)).json()
    assert body["window"] == "24h"
    assert body["total"] == 2
    assert (body["counts"]["completed"], body["counts"]["failed"]) == (1, 1)
    assert body["success_rate"] == 0.5
    assert "jobs" in body["queues"]
    assert set(body["queues"]["jobs"]) == {"ready", "delayed", "in_flight", "dead"}


def test_submitter_sees_only_their_own_jobs_and_no_queues(user, other_user):
    JobFactory(user_id=user.pk, status=JobStatus.COMPLETED, duration_ms=10)
    JobFactory(user_id=other_user.pk, status=JobStatus.FAILED)
    body = APIClient().get(STATS + "?window=7d", **credentials.jwt_for(user)).json()
    assert (body["window"], body["total"], body["counts"]["failed"]) == ("7d", 1, 0)
    assert body["queues"] is None


def test_unknown_window_is_400_with_valid_values(user):
    response = APIClient().get(STATS + "?window=2d", **credentials.jwt_for(user))
    assert response.status_code == 400
    assert response.json()["details"]["valid_values"] == ["1h", "24h", "7d", "30d"]
