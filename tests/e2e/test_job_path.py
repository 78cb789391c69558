"""A job's whole path through real processes: gunicorn, a Dramatiq worker, a real broker."""

import time

import pytest
import requests
from django.conf import settings

from audit.models import AuditLog
from jobs.models import Job, JobResult, JobStatus, StageRun

from .conftest import child_env, web_server

pytestmark = pytest.mark.e2e

HTML = "<html><head><style>p {}</style></head><body><p>Jobs run in the background.</p><p>Results come back.</p></body>"


@pytest.fixture(params=["db", "redis"])
def broker_url(request):
    if request.param == "redis":
        return request.getfixturevalue("redis_url")
    return "db"


def _headers():
    return {"X-API-Secret": settings.JOBSITE_API_SECRET}


def _wait_for_status(url, job_id, statuses, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = requests.get(f"{url}/api/v1/jobs/{job_id}/", headers=_headers(), timeout=5).json()
        if body["status"] in statuses:
            return body
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} still {body['status']} after {timeout}s")


def test_submitted_job_runs_on_a_real_worker_and_its_result_comes_back(service):
    response = requests.post(
        f"{service}/api/v1/jobs/",
        json={"pipeline": "text-analysis", "input_data": {"html": HTML}, "username": "e2e"},
        headers=_headers(),
        timeout=5,
    )
    assert response.status_code == 201, response.text
    job_id = response.json()["job_id"]

    detail = _wait_for_status(service, job_id, {"completed", "failed"})
    assert detail["status"] == "completed", detail
    assert [s["name"] for s in detail["stages"]] == ["extract", "stats"]

    result = requests.get(f"{service}/api/v1/jobs/{job_id}/result/", headers=_headers(), timeout=5)
    assert result.status_code == 200
    stats = result.json()["result"]
    assert stats["words"] == 8
    assert stats["sentences"] == 2

    job = Job.objects.get(pk=job_id)
    assert job.status == JobStatus.COMPLETED
    assert job.attempts == 1
    assert job.created_at <= job.queued_at <= job.started_at <= job.completed_at
    assert job.duration_ms == round((job.completed_at - job.started_at).total_seconds() * 1000)
    assert JobResult.objects.get(job=job).result == stats
    # The audit row is written after the response left gunicorn, and completed with its status.
    audit = AuditLog.objects.get(action="jobs.job.create", resource_id=job_id)
    assert (audit.principal, audit.status_code, audit.success) == ("service", 201, True)
    assert list(StageRun.objects.filter(job=job).values_list("name", "status")) == [
        ("extract", "completed"),
        ("stats", "completed"),
    ]


def test_many_jobs_each_run_exactly_once(service):
    ids = []
    for n in range(20):
        response = requests.post(
            f"{service}/api/v1/jobs/",
            json={"pipeline": "sample_task", "input_data": {"n": n}},
            headers=_headers(),
            timeout=5,
        )
        assert response.status_code == 201
        ids.append(response.json()["job_id"])

    deadline = time.monotonic() + 60
    while Job.objects.filter(pk__in=ids, status=JobStatus.COMPLETED).count() < len(ids):
        assert time.monotonic() < deadline, "jobs did not all complete"
        time.sleep(0.2)
    assert set(Job.objects.filter(pk__in=ids).values_list("attempts", flat=True)) == {1}
    assert StageRun.objects.filter(job_id__in=ids).count() == len(ids)


def test_health_db_reports_503_when_the_database_is_unreachable():
    env = child_env(DATABASE_URL="postgres://postgres@127.0.0.1:1/unreachable", DRAMATIQ_BROKER_URL="stub")
    with web_server(env) as url:
        assert requests.get(f"{url}/health", timeout=5).status_code == 200
        response = requests.get(f"{url}/health/db", timeout=10)
        assert response.status_code == 503
        assert response.json()["status"] == "unavailable"
        submit = requests.post(
            f"{url}/api/v1/jobs/",
            json={"pipeline": "sample_task", "input_data": {}},
            headers=_headers(),
            timeout=10,
        )
        assert submit.status_code == 503
        assert submit.json()["error"] == "service_unavailable"
