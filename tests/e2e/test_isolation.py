"""A stage burning CPU never freezes its worker: it runs isolated and is killed at its deadline."""

import time

import pytest
import requests
from django.conf import settings
from django.utils import timezone

from jobs.models import Job, JobStatus, StageRun, WorkerProcess
from pipelines.services import pipeline_ensure
from tests.e2e import stages  # noqa: F401  registers the spinning stage types in this process too

pytestmark = pytest.mark.e2e


@pytest.fixture
def broker_url(redis_url):
    return redis_url


def _submit(url, pipeline, input_data):
    response = requests.post(
        f"{url}/api/v1/jobs/",
        json={"pipeline": pipeline, "input_data": input_data},
        headers={"X-API-Secret": settings.JOBSITE_API_SECRET},
        timeout=5,
    )
    assert response.status_code == 201, response.text
    return response.json()["job_id"]


def _wait(predicate, timeout=30):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.parametrize("stage_type", ["e2e_spin_python", "e2e_spin_regex"])
def test_a_cpu_bound_stage_is_killed_at_its_timeout_while_the_worker_carries_on(service, stage_type):
    pipeline_ensure(
        name="spin",
        config={"stages": [{"name": "spin", "type": stage_type, "timeout_s": 1}], "max_attempts": 1},
    )
    spin_id = _submit(service, "spin", {})
    _wait(lambda: Job.objects.filter(pk=spin_id, status=JobStatus.PROCESSING).exists())

    other_id = _submit(service, "sample_task", {"n": 1})
    beats = []
    while Job.objects.filter(pk=spin_id, status=JobStatus.PROCESSING).exists():
        worker = WorkerProcess.objects.filter(stopped_at__isnull=True).order_by("-last_seen_at").first()
        beats.append((timezone.now() - worker.last_seen_at).total_seconds())
        time.sleep(0.1)
    _wait(lambda: Job.objects.filter(pk=other_id, status=JobStatus.COMPLETED).exists())

    spin, other = Job.objects.get(pk=spin_id), Job.objects.get(pk=other_id)
    assert spin.status == JobStatus.FAILED
    assert "exceeded its timeout of 1 s" in spin.error_message
    # Killed at its deadline, not after the 60 s (or the eternity of backtracking) it would have run:
    # the stage's own record (its start to its failure) says ~1 s; the bound leaves room for a loaded machine.
    run = StageRun.objects.get(job=spin)
    assert run.status == "failed"
    assert 1000 <= run.duration_ms < 3000, run.duration_ms
    # The other job ran on the same worker meanwhile, and finished first.
    assert other.completed_at < spin.completed_at
    # The heartbeat (every second) never stalled while the stage burned CPU.
    assert beats and max(beats) < 2.5, beats
