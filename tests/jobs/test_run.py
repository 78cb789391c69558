"""The run path: stage retries with backoff, timeouts, checkpoints, bad outputs, large results."""

import hashlib
import json
import time
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from jobs.models import Job, JobResult, JobStatus, StageRun
from jobs.run import job_claim, job_run, stage_retry_delay_ms
from pipelines.registry import stage
from tests.factories import JobFactory, PipelineFactory

CALLS: dict[str, int] = {}


@stage("test_fails_n_times", isolated=False)
def fails_n_times(ctx):
    """Fails the first `ctx.input['fail']` times it runs for a job."""
    CALLS[ctx.job_id] = CALLS.get(ctx.job_id, 0) + 1
    if CALLS[ctx.job_id] <= ctx.input.get("fail", 0):
        raise ConnectionError(f"try {CALLS[ctx.job_id]} failed")
    return {"tries": CALLS[ctx.job_id]}


@stage("test_not_json")
def not_json(ctx):
    """Returns something JSON cannot encode."""
    return {"when": object()}


@stage("test_busy_loop")
def busy_loop(ctx):
    """Spins in Python (no sleep) for `ctx.input['seconds']`."""
    deadline = time.monotonic() + ctx.input["seconds"]
    n = 0
    while time.monotonic() < deadline:
        n += 1
    return {"spins": n}


@stage("test_big_output")
def big_output(ctx):
    """Returns about `ctx.input['bytes']` bytes of JSON."""
    return {"blob": "x" * ctx.input["bytes"], "n": 1}


def _job(stages, **input_data):
    return JobFactory(
        pipeline=PipelineFactory(config={"stages": stages}), status=JobStatus.QUEUED, input_data=input_data
    )


def _release(job):
    """Let a retrying job's backoff pass."""
    Job.objects.filter(pk=job.pk).update(run_at=timezone.now() - timedelta(seconds=1))


@pytest.fixture(autouse=True, params=["single-statement", "portable"])
def _transition_form(request, settings):
    """Every test here runs with PostgreSQL's single-statement transitions and with the portable ORM form."""
    settings.JOB_RUN_SINGLE_STATEMENT = request.param == "single-statement"


@pytest.fixture(autouse=True)
def _fast_backoff(settings):
    settings.STAGE_RETRY_BACKOFF_BASE_MS = 100
    settings.STAGE_RETRY_BACKOFF_MAX_MS = 1000


def test_backoff_grows_exponentially_with_jitter_and_a_cap(settings):
    settings.STAGE_RETRY_BACKOFF_BASE_MS = 1000
    settings.STAGE_RETRY_BACKOFF_MAX_MS = 10_000
    for attempt, ceiling in [(1, 1000), (2, 2000), (3, 4000), (4, 8000), (5, 10_000), (9, 10_000)]:
        delays = {stage_retry_delay_ms(attempt) for _ in range(50)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(delays) > 1


def test_failing_stage_with_retries_waits_as_retrying_and_is_re_sent_with_a_delay(
    stub_broker, db, django_capture_on_commit_callbacks
):
    job = _job(
        [
            {"name": "first", "type": "echo"},
            {"name": "flaky", "type": "test_fails_n_times", "retries": 2},
            {"name": "last", "type": "echo"},
        ],
        fail=2,
    )
    with django_capture_on_commit_callbacks(execute=True):
        job_run(job_id=str(job.pk))
    job.refresh_from_db()
    assert job.status == JobStatus.RETRYING
    # Backoff base 100 ms (the fixture): the first retry waits 50..100 ms after the failure was recorded.
    assert timedelta(milliseconds=50) <= job.run_at - job.updated_at <= timedelta(milliseconds=100)
    assert "try 1 failed" in job.error_message
    assert stub_broker.queues["jobs.DQ"].qsize() == 1

    assert job_claim(job_id=str(job.pk), worker="early") is None  # not before its backoff

    for _ in range(2):
        _release(job)
        job_run(job_id=str(job.pk))
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED
    runs = list(StageRun.objects.filter(job=job).order_by("index", "attempt").values_list("name", "attempt", "status"))
    assert runs == [
        ("first", 1, "completed"),
        ("flaky", 1, "failed"),
        ("flaky", 2, "failed"),
        ("flaky", 3, "completed"),
        ("last", 1, "completed"),
    ]
    assert job.result.result == {"tries": 3}


def test_stage_out_of_retries_fails_the_job_with_its_error_and_traceback(stub_broker, db):
    job = _job([{"name": "flaky", "type": "test_fails_n_times", "retries": 1}], fail=5)
    job_run(job_id=str(job.pk))
    _release(job)
    job_run(job_id=str(job.pk))
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert job.error_message == "Stage 'flaky' failed (attempt 2 of 2): ConnectionError: try 2 failed"
    last = StageRun.objects.filter(job=job).order_by("-attempt").first()
    assert "ConnectionError: try 2 failed" in last.traceback
    assert "fails_n_times" in last.traceback


def test_stage_timeout_is_enforced(db):
    job = _job([{"name": "spin", "type": "test_busy_loop", "timeout_s": 1}], seconds=60)
    started = time.monotonic()
    job_run(job_id=str(job.pk))
    assert time.monotonic() - started < 30  # killed at its deadline, not after its 60 s
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert "exceeded its timeout of 1 s" in job.error_message
    assert StageRun.objects.get(job=job).status == "failed"


def test_stage_within_its_timeout_is_unaffected(db):
    job = _job([{"name": "spin", "type": "test_busy_loop", "timeout_s": 5}], seconds=0.2)
    job_run(job_id=str(job.pk))
    time.sleep(0.1)
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED


def test_output_that_is_not_json_fails_the_job_clearly(db):
    job = _job([{"name": "odd", "type": "test_not_json"}])
    job_run(job_id=str(job.pk))
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert "not JSON serializable" in job.error_message
    # The worker carries on: the next job runs.
    other = _job([{"name": "fine", "type": "echo"}], a=1)
    job_run(job_id=str(other.pk))
    other.refresh_from_db()
    assert other.status == JobStatus.COMPLETED


def test_large_result_is_a_file_streamed_back_byte_identical(service_client, db):
    job = _job([{"name": "big", "type": "test_big_output"}], bytes=3 * 1024 * 1024)
    job_run(job_id=str(job.pk))
    result = JobResult.objects.get(job=job)
    assert result.result is None and result.result_file
    assert result.size_bytes > 3 * 1024 * 1024

    response = service_client.get(f"/api/v1/jobs/{job.pk}/result/")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    body = json.loads(b"".join(response.streaming_content))
    assert hashlib.sha256(result.result_file.read()).hexdigest() == result.checksum
    assert response["X-Result-Checksum"] == f"sha256={result.checksum}"
    assert body["result"] == {"blob": "x" * (3 * 1024 * 1024), "n": 1}
    assert body["job_id"] == str(job.pk)


def test_cleanup_results_deletes_expired_results_and_their_files(db):
    big = _job([{"name": "big", "type": "test_big_output"}], bytes=2 * 1024 * 1024)
    small = _job([{"name": "small", "type": "echo"}], a=1)
    fresh = _job([{"name": "fresh", "type": "echo"}], a=2)
    for job in (big, small, fresh):
        job_run(job_id=str(job.pk))
    path = JobResult.objects.get(job=big).result_file.path
    JobResult.objects.filter(job__in=[big, small]).update(expires_at=timezone.now() - timedelta(seconds=1))

    out = StringIO()
    call_command("cleanup_results", "--dry-run", stdout=out)
    assert "2 expired results" in out.getvalue()
    assert JobResult.objects.count() == 3

    call_command("cleanup_results", "--batch-size", "1", stdout=StringIO())
    assert list(JobResult.objects.values_list("job_id", flat=True)) == [fresh.pk]
    assert not __import__("os").path.exists(path)


def test_errors_that_cannot_pass_are_not_retried(db, stub_broker):
    job = _job([{"name": "odd", "type": "test_not_json", "retries": 3}])
    job_run(job_id=str(job.pk))
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert "(attempt 1 of 4): StageOutputError: its output is not JSON" in job.error_message
    assert StageRun.objects.filter(job=job).count() == 1


def test_stage_retries_never_take_a_job_past_its_max_attempts(db, stub_broker):
    job = _job([{"name": "flaky", "type": "test_fails_n_times", "retries": 5}], fail=10)
    Job.objects.filter(pk=job.pk).update(max_attempts=3)

    for _ in range(5):
        job_run(job_id=str(job.pk))
        _release(job)

    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert (job.attempts, job.max_attempts) == (3, 3)
    assert job.error_message.endswith("the job's 3 attempts are spent")
    assert StageRun.objects.filter(job=job).count() == 3
