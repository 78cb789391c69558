"""Priority on every broker: under a backlog, a higher band's job starts before the backlog drains."""

import time

import pytest
import requests
from django.conf import settings
from django.db.models import Q

from jobs.models import Job, JobStatus
from pipelines.services import pipeline_ensure

pytestmark = pytest.mark.e2e

HEADERS = {"X-API-Secret": settings.JOBSITE_API_SECRET}


@pytest.fixture(params=["db", "redis"])
def broker_url(request):
    if request.param == "redis":
        return request.getfixturevalue("redis_url")
    return "db"


def test_an_urgent_job_starts_before_a_backlog_of_normal_ones_drains(service):
    pipeline_ensure(name="nap", config={"stages": [{"name": "nap", "type": "sleep", "params": {"seconds": 0.05}}]})
    backlog = [{"pipeline": "nap", "input_data": {"n": n}, "priority": 0} for n in range(200)]
    response = requests.post(f"{service}/api/v1/jobs/batch/", json={"jobs": backlog}, headers=HEADERS, timeout=30)
    assert response.status_code == 200, response.text
    assert all(item["status"] == 201 for item in response.json()["results"])
    deadline = time.monotonic() + 30
    while not Job.objects.filter(pipeline__name="nap", status=JobStatus.COMPLETED).exists():
        assert time.monotonic() < deadline
        time.sleep(0.05)

    response = requests.post(
        f"{service}/api/v1/jobs/",
        json={"pipeline": "nap", "input_data": {"urgent": True}, "priority": 9},
        headers=HEADERS,
        timeout=10,
    )
    assert response.status_code == 201, response.text
    urgent_id = response.json()["job_id"]
    deadline = time.monotonic() + 60
    while not Job.objects.filter(pk=urgent_id, status=JobStatus.COMPLETED).exists():
        assert time.monotonic() < deadline
        time.sleep(0.05)

    urgent = Job.objects.get(pk=urgent_id)
    normal = Job.objects.filter(pipeline__name="nap", priority=0)
    normal_after = normal.filter(Q(started_at__isnull=True) | Q(started_at__gt=urgent.started_at)).count()
    # Two threads at 20 jobs/s each: the backlog takes about 5 s; the urgent job jumped most of it.
    assert normal_after >= 100, normal_after
