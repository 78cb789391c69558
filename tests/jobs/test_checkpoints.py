"""When the runs of idempotent stages are written: with the job's next write, or once a later stage runs on."""

import threading
import time

import pytest
from django.db import connection

from jobs.models import JobStatus, StageRun
from jobs.run import job_run
from tests.factories import JobFactory, PipelineFactory

pytestmark = pytest.mark.django_db(transaction=True)


def _runs(job):
    return list(StageRun.objects.filter(job=job).order_by("index").values_list("name", "status", "job_attempt"))


def test_a_stage_that_runs_on_writes_the_runs_waiting_before_it(settings):
    settings.JOB_CHECKPOINT_INTERVAL_MS = 60_000  # only the running stage's check can write "a" early
    config = {"stages": [{"name": "a", "type": "echo"}, {"name": "nap", "type": "sleep", "params": {"seconds": 2}}]}
    job = JobFactory(pipeline=PipelineFactory(config=config), status=JobStatus.QUEUED)
    worker = threading.Thread(target=lambda: (job_run(job_id=str(job.pk)), connection.close()))
    worker.start()
    try:
        deadline = time.monotonic() + 10
        while not StageRun.objects.filter(job=job).exists():
            assert time.monotonic() < deadline, "the run of 'a' was never written"
            time.sleep(0.05)
        # Written while "nap" runs (its first cancellation check, 0.5 s in), not with the completion.
        assert _runs(job) == [("a", "completed", 1)]
        job.refresh_from_db()
        assert job.status == JobStatus.PROCESSING
        assert job.progress == 50.0
    finally:
        worker.join(timeout=10)
    assert _runs(job) == [("a", "completed", 1), ("nap", "completed", 1)]


def test_a_cancel_asked_while_runs_wait_is_seen_by_the_check_that_writes_them(settings, monkeypatch):
    from jobs import run
    from jobs.services import job_cancel

    settings.JOB_CHECKPOINT_INTERVAL_MS = 60_000
    checkpoints = []  # (runs written, the status the same statement read back)
    original = run.job_checkpoint

    def recording(**kwargs):
        status = original(**kwargs)
        checkpoints.append(([record.name for record in kwargs["records"]], status))
        return status

    monkeypatch.setattr(run, "job_checkpoint", recording)
    config = {"stages": [{"name": "a", "type": "echo"}, {"name": "nap", "type": "sleep", "params": {"seconds": 30}}]}
    job = JobFactory(pipeline=PipelineFactory(config=config), status=JobStatus.QUEUED)
    worker = threading.Thread(target=lambda: (job_run(job_id=str(job.pk)), connection.close()))
    worker.start()
    deadline = time.monotonic() + 10
    while job.status != JobStatus.PROCESSING:
        assert time.monotonic() < deadline
        time.sleep(0.02)
        job.refresh_from_db()
    job_cancel(job_id=job.pk)
    worker.join(timeout=10)

    assert not worker.is_alive()
    # The check 0.5 s into "nap" wrote the run of "a" and read the cancel back in the same statement.
    assert checkpoints == [(["a"], JobStatus.CANCELLING)]
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED
    assert _runs(job) == [("a", "completed", 1), ("nap", "cancelled", 1)]
