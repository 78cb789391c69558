"""Metrics and correlated logs through real processes: gunicorn (two workers) and a Dramatiq worker.

Both write their metrics to one PROMETHEUS_MULTIPROC_DIR, and `/metrics` on
the web server adds them up; the worker logs JSON (LOG_FORMAT=json), captured
from its output.
"""

import json
import subprocess
import sys
import time
from contextlib import contextmanager

import pytest
import requests
from django.conf import settings

from jobs.models import Job, JobStatus
from tests.e2e.conftest import ROOT, child_env, database_url, stop, web_server
from tests.factories import PipelineFactory

from .conftest import ALLOWED_LABELS, SCRAPE_TOKEN, Scrape

pytestmark = pytest.mark.e2e

FINISHED = [JobStatus.COMPLETED, JobStatus.FAILED]
JSON_KEYS = {"time", "level", "logger", "message", "request_id", "job_id", "worker", "pipeline", "duration_ms"}


@pytest.fixture
def env(transactional_db, tmp_path):
    return child_env(
        DATABASE_URL=database_url(),
        DRAMATIQ_BROKER_URL=settings.TEST_BROKER_URL,
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"),
        METRICS_TOKEN=SCRAPE_TOKEN,
        LOG_FORMAT="json",
        JOBSITE_STAGE_MODULES="tests.observability.stages",
        ALLOW_PRIVATE_NETWORK_URLS="1",  # the job's callback goes to a receiver on 127.0.0.1
    )


@pytest.fixture
def pipelines(transactional_db):
    stages = {"echo": [{"name": "say", "type": "echo"}], "fail": [{"name": "refuse", "type": "obs_fail"}]}
    return {
        kind: PipelineFactory(name=f"obs-{kind}", config={"input_schema": {"type": "object"}, "stages": spec})
        for kind, spec in stages.items()
    }


@contextmanager
def worker(env, log_path, **extra):
    """A real `manage.py rundramatiq`, its whole output (every process's) in `log_path`."""
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "rundramatiq", "--processes", "1", "--threads", "2"],
            cwd=ROOT,
            env={**env, **extra},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield proc
        finally:
            stop(proc)


def submit(url, pipeline: str, webhook_url: str | None = None, **headers) -> str:
    response = requests.post(
        f"{url}/api/v1/jobs/",
        json={"pipeline": pipeline, "input_data": {"n": 1}, "webhook_url": webhook_url},
        headers={"X-API-Secret": settings.JOBSITE_API_SECRET, **headers},
        timeout=10,
    )
    assert response.status_code == 201, response.text
    return response.json()["job_id"]


def scrape(url) -> Scrape:
    response = requests.get(f"{url}/metrics", headers={"Authorization": f"Bearer {SCRAPE_TOKEN}"}, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/plain")
    return Scrape.parse(response.text)


def wait_until(predicate, timeout=30, what="the jobs to finish"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _records(log_path) -> tuple[list[dict], list[str]]:
    """The worker's JSON records, and its other lines (the command's banner, dramatiq's supervisor)."""
    records, others = [], []
    for line in log_path.read_text().splitlines():
        if line.startswith("{"):
            records.append(json.loads(line))  # a JSON line must parse whole
        elif line.strip():
            others.append(line)
    return records, others


def test_metrics_move_as_real_jobs_do_and_one_request_id_follows_its_job_into_the_workers_logs(
    env, pipelines, tmp_path, httpserver
):
    """One set of processes for both (they take seconds to start): the metrics, then the worker's log records.

    The traced job has a callback, so its request id is followed to the webhook delivery's record too.
    """
    httpserver.expect_request("/callback", method="POST").respond_with_data("", status=204)
    log_path = tmp_path / "worker.log"
    with web_server(env, workers=2) as url:
        before = scrape(url)
        assert before.value("jobsite_workers_alive") == 0
        assert before.value("jobsite_queue_workers", queue="jobs") == 0

        callback = f"http://127.0.0.1:{httpserver.port}/callback"
        traced = submit(url, "obs-echo", webhook_url=callback, **{"X-Request-ID": "trace-me-0042"})
        ids = [traced, *(submit(url, "obs-echo") for _ in range(2)), submit(url, "obs-fail")]

        queued = scrape(url)
        # The two gunicorn workers served the submissions between them: the counts are added up.
        assert queued.value("jobsite_jobs_submitted_total", pipeline="obs-echo") == 3
        assert queued.value("jobsite_jobs_submitted_total", pipeline="obs-fail") == 1
        assert queued.value("jobsite_queue_depth", queue="jobs") == 4
        assert queued.value("jobsite_jobs_started_total") == 0
        assert queued.value("jobsite_broker_up") == 1

        with worker(env, log_path, LOG_LEVEL="DEBUG"):
            wait_until(lambda: Job.objects.filter(pk__in=ids, status__in=FINISHED).count() == 4)
            wait_until(lambda: len(httpserver.log) == 1, what="the job's callback")
            wait_until(lambda: scrape(url).value("jobsite_workers_alive") >= 1, what="the worker's heartbeat")
            done = scrape(url)
            time.sleep(0.3)  # the completion line is logged just after the job's row changes

    assert done.value("jobsite_queue_depth", queue="jobs") == 0
    assert done.value("jobsite_queue_workers", queue="jobs") == 1
    assert done.value("jobsite_jobs_started_total", pipeline="obs-echo") == 3
    assert done.value("jobsite_jobs_completed_total", pipeline="obs-echo") == 3
    assert done.value("jobsite_jobs_failed_total", pipeline="obs-fail") == 1
    assert done.value("jobsite_jobs_failed_total", pipeline="obs-echo") == 0
    echo = {"pipeline": "obs-echo"}
    assert done.value("jobsite_job_duration_seconds_count", outcome="completed", **echo) == 3
    assert done.value("jobsite_job_duration_seconds_bucket", outcome="completed", le="+Inf", **echo) == 3
    assert done.value("jobsite_stage_duration_seconds_count", stage_type="echo", outcome="completed", **echo) == 3
    assert done.value("jobsite_stage_duration_seconds_count", stage_type="obs_fail", outcome="failed") == 1
    assert done.value("jobsite_job_pickup_seconds_count", queue="jobs") == 4
    assert done.value("jobsite_job_pickup_seconds_sum", queue="jobs") > 0
    assert done.value("jobsite_http_requests_total", route="/api/v1/jobs/", method="POST", status="201") == 4

    assert done.jobsite_label_names() <= ALLOWED_LABELS
    users = {str(pk) for pk in Job.objects.filter(pk__in=ids).values_list("user_id", flat=True) if pk}
    leaked = {value for value in done.jobsite_label_values() if any(i in value for i in {*ids, *users})}
    assert leaked == set()

    records, others = _records(log_path)
    # Only the rundramatiq banner and dramatiq's supervisor process write anything but JSON.
    assert all(line.startswith(" * ") or "[dramatiq.MainProcess]" in line for line in others), others
    assert all(set(record) >= JSON_KEYS for record in records)

    mine = [r for r in records if r["request_id"] == "trace-me-0042"]
    assert {r["job_id"] for r in mine} == {traced}
    assert {r["pipeline"] for r in mine} == {"obs-echo"}
    assert all(r["worker"] for r in mine)
    messages = [r["message"] for r in mine]
    assert any("claimed" in m for m in messages), messages
    assert any("stage 'say' completed" in m for m in messages), messages
    [completion] = [r for r in mine if r["message"].startswith(f"Job {traced} completed")]
    assert completion["level"] == "INFO"
    assert isinstance(completion["duration_ms"], int)
    # ... and on to the delivery of its job.completed event to its callback.
    [delivered] = [r for r in mine if r["message"].startswith("Webhook delivery")]
    assert "job.completed" in delivered["message"] and "succeeded 204" in delivered["message"]

    # The other jobs' records carry their own request ids (generated by the web server), never this one.
    theirs = [r for r in records if r["job_id"] in ids[1:]]
    assert theirs and all(r["request_id"] not in (None, "trace-me-0042") for r in theirs)
