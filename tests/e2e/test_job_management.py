"""Cancelling jobs on real worker processes."""

import time

import pytest
import requests
from django.conf import settings
from django.utils import timezone

from jobs.models import Job, JobStatus, StageRun
from pipelines.services import pipeline_ensure

pytestmark = pytest.mark.e2e

HEADERS = {"X-API-Secret": settings.JOBSITE_API_SECRET}


@pytest.fixture
def broker_url():
    return "db"


def _wait(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def _submit(url, body):
    response = requests.post(f"{url}/api/v1/jobs/", json=body, headers=HEADERS, timeout=5)
    assert response.status_code == 201, response.text
    return response.json()["job_id"]


def test_cancel_stops_a_running_job_inside_its_long_stage(service):
    pipeline_ensure(
        name="napper",
        config={
            "stages": [
                {"name": "nap", "type": "sleep", "params": {"seconds": 60}},
                {"name": "never", "type": "echo", "params": {}},
            ]
        },
    )
    job_id = _submit(service, {"pipeline": "napper", "input_data": {}})
    assert _wait(lambda: Job.objects.get(pk=job_id).status == JobStatus.PROCESSING)

    response = requests.post(f"{service}/api/v1/jobs/{job_id}/cancel/", headers=HEADERS, timeout=5)
    assert response.status_code == 200
    assert response.json()["status"] == "cancelling"
    asked = time.monotonic()

    assert _wait(lambda: Job.objects.get(pk=job_id).status == JobStatus.CANCELLED, timeout=10)
    assert time.monotonic() - asked < 5
    assert list(StageRun.objects.filter(job_id=job_id).values_list("name", "status")) == [("nap", "cancelled")]


def test_cancelled_waiting_job_never_runs_when_its_message_arrives(service):
    run_at = (timezone.now() + timezone.timedelta(seconds=2)).isoformat()
    job_id = _submit(service, {"pipeline": "sample_task", "input_data": {}, "run_at": run_at})
    assert Job.objects.get(pk=job_id).status == JobStatus.SCHEDULED

    response = requests.delete(f"{service}/api/v1/jobs/{job_id}/", headers=HEADERS, timeout=5)
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"

    time.sleep(3.5)  # the delayed message is delivered and finds nothing to claim
    job = Job.objects.get(pk=job_id)
    assert (job.status, job.attempts) == (JobStatus.CANCELLED, 0)
    assert not StageRun.objects.filter(job_id=job_id).exists()


def test_scheduled_job_runs_after_its_run_at(service):
    run_at = timezone.now() + timezone.timedelta(seconds=2)
    job_id = _submit(service, {"pipeline": "sample_task", "input_data": {}, "run_at": run_at.isoformat()})
    assert _wait(lambda: Job.objects.get(pk=job_id).status == JobStatus.COMPLETED, timeout=20)
    assert Job.objects.get(pk=job_id).started_at >= run_at
