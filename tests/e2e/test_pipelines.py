"""Pipelines on real processes: a flaky HTTP stage against a real local server, retries, resume."""

import json
import time

import pytest
import requests
from django.conf import settings
from werkzeug import Response

from jobs.models import Job, JobStatus, StageRun
from pipelines.services import pipeline_ensure

from .conftest import child_env, database_url, web_server, worker

pytestmark = pytest.mark.e2e
HEADERS = {"X-API-Secret": settings.JOBSITE_API_SECRET}


@pytest.fixture
def service(transactional_db, demo_pipelines):
    env = child_env(
        DATABASE_URL=database_url(),
        DRAMATIQ_BROKER_URL="db",
        ALLOW_PRIVATE_NETWORK_URLS="1",
        STAGE_RETRY_BACKOFF_BASE_MS="200",
        STAGE_RETRY_BACKOFF_MAX_MS="400",
    )
    with web_server(env) as url, worker(env):
        yield url


class Flaky:
    """A handler that fails `failures` times, then answers with JSON."""

    def __init__(self, failures: int):
        self.failures = failures
        self.calls = 0

    def __call__(self, request):
        self.calls += 1
        if self.calls <= self.failures:
            return Response("busy", status=503)
        return Response(json.dumps({"greeting": "hello", "n": self.calls}), content_type="application/json")


def _pipeline(httpserver, retries):
    pipeline_ensure(
        name="fetch-and-shape",
        config={
            "stages": [
                {"name": "prepare", "type": "transform", "params": {"select": {"who": "input.who"}}},
                {
                    "name": "fetch",
                    "type": "http_request",
                    "params": {"url": httpserver.url_for("/greet") + "?who={previous.who}", "timeout_s": 5},
                    "retries": retries,
                },
                {"name": "shape", "type": "transform", "params": {"select": {"said": "fetch.body.greeting"}}},
            ]
        },
    )


def _submit(url):
    response = requests.post(
        f"{url}/api/v1/jobs/", json={"pipeline": "fetch-and-shape", "input_data": {"who": "ada"}}, headers=HEADERS,
        timeout=5,
    )  # fmt: skip
    assert response.status_code == 201, response.text
    return response.json()["job_id"]


def _wait_finished(job_id, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = Job.objects.get(pk=job_id)
        if job.status in (JobStatus.COMPLETED, JobStatus.FAILED):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job still {job.status}")


def _runs(job_id):
    return list(StageRun.objects.filter(job_id=job_id).order_by("index", "attempt").values_list("name", "status"))


def test_flaky_middle_stage_is_retried_with_backoff_and_the_job_completes(service, httpserver):
    flaky = Flaky(failures=2)
    httpserver.expect_request("/greet", query_string="who=ada").respond_with_handler(flaky)
    _pipeline(httpserver, retries=3)

    job = _wait_finished(_submit(service))

    assert job.status == JobStatus.COMPLETED, job.error_message
    assert flaky.calls == 3
    assert _runs(job.pk) == [
        ("prepare", "completed"),
        ("fetch", "failed"),
        ("fetch", "failed"),
        ("fetch", "completed"),
        ("shape", "completed"),
    ]
    result = requests.get(f"{service}/api/v1/jobs/{job.pk}/result/", headers=HEADERS, timeout=5).json()
    assert result["result"] == {"said": "hello"}


def test_stage_out_of_retries_fails_then_a_retry_resumes_at_it_once_fixed(service, httpserver):
    flaky = Flaky(failures=10**6)
    httpserver.expect_request("/greet").respond_with_handler(flaky)
    _pipeline(httpserver, retries=1)

    job = _wait_finished(_submit(service))
    assert job.status == JobStatus.FAILED
    assert "Stage 'fetch' failed (attempt 2 of 2)" in job.error_message
    assert "503" in job.error_message
    assert StageRun.objects.filter(job=job, name="fetch", status="failed").exclude(traceback="").count() == 2

    flaky.failures = 0  # the server is fixed
    retried = requests.post(f"{service}/api/v1/jobs/{job.pk}/retry/", json={}, headers=HEADERS, timeout=5)
    assert retried.status_code == 200
    job = _wait_finished(job.pk)
    assert job.status == JobStatus.COMPLETED
    assert [r for r in _runs(job.pk) if r[0] == "prepare"] == [("prepare", "completed")]
    assert _runs(job.pk)[-2:] == [("fetch", "completed"), ("shape", "completed")]
