"""SRE commands and the queue health check: cleanup_jobs, queue_stats, /health/queue."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from rest_framework.test import APIClient

from audit.models import AuditLog
from jobs.models import Job, JobResult, JobStatus, StageRun, WorkerProcess
from jobs.run import job_run
from tests.factories import JobFactory, PipelineFactory


def _old(job, days):
    Job.objects.filter(pk=job.pk).update(
        completed_at=timezone.now() - timedelta(days=days), created_at=timezone.now() - timedelta(days=days)
    )


def test_cleanup_jobs_deletes_old_finished_jobs_with_their_runs_and_results(db, settings):
    settings.RESULT_INLINE_MAX_BYTES = 10
    pipeline = PipelineFactory(config={"stages": [{"name": "echo", "type": "echo"}]})
    old = [JobFactory(pipeline=pipeline, input_data={"text": "a long enough input"}) for _ in range(3)]
    for job in old:
        job_run(job_id=str(job.pk))
    files = [JobResult.objects.get(job=job).result_file.path for job in old]
    for job in old:
        _old(job, 40)
    recent = JobFactory(status=JobStatus.COMPLETED, completed_at=timezone.now())
    old_running = JobFactory(status=JobStatus.PROCESSING)
    _old(old_running, 40)
    old_failed = JobFactory(status=JobStatus.FAILED)
    _old(old_failed, 40)

    out = StringIO()
    call_command("cleanup_jobs", "--older-than", "30d", "--status", "completed", "--dry-run", stdout=out)
    assert "dry run: 3 jobs" in out.getvalue()
    assert Job.objects.count() == 6

    out = StringIO()
    call_command("cleanup_jobs", "--older-than", "30d", "--status", "completed", "--batch-size", "2", stdout=out)
    assert out.getvalue().count("deleted ") == 2
    assert set(Job.objects.values_list("pk", flat=True)) == {recent.pk, old_running.pk, old_failed.pk}
    assert not StageRun.objects.filter(job_id__in=[j.pk for j in old]).exists()
    assert not any(__import__("os").path.exists(path) for path in files)
    assert AuditLog.objects.get(action="command.cleanup_jobs.purge").request_details["operation"]["deleted"] == 3

    call_command("cleanup_jobs", "--older-than", "30d", stdout=StringIO())
    assert set(Job.objects.values_list("pk", flat=True)) == {recent.pk, old_running.pk}


@pytest.mark.parametrize(
    "args", [["--older-than", "soon"], ["--older-than", "30d", "--status", "processing"], ["--older-than", "0d"]]
)
def test_cleanup_jobs_rejects_bad_arguments(db, args):
    with pytest.raises(CommandError):
        call_command("cleanup_jobs", *args)


def test_queue_stats_prints_depths_statuses_oldest_job_and_workers(db, stub_broker):
    waiting = JobFactory(status=JobStatus.QUEUED)
    JobFactory(status=JobStatus.FAILED)
    WorkerProcess.objects.create(
        worker_id="box:7:abc", hostname="box", pid=7, queues=["jobs"], started_at=timezone.now(),
        last_seen_at=timezone.now(),
    )  # fmt: skip
    out = StringIO()
    call_command("queue_stats", stdout=out)
    text = out.getvalue()
    assert "jobs" in text.split("Jobs by status")[0]
    assert "  queued               1" in text
    assert "  failed               1" in text
    assert f"oldest waiting: {waiting.pk} (queued" in text
    assert "Live workers (1)" in text and "box:7:abc" in text


def test_health_queue_reports_depths_throughput_and_live_workers(db, stub_broker, settings):
    JobFactory(status=JobStatus.COMPLETED, completed_at=timezone.now() - timedelta(seconds=10))
    JobFactory(status=JobStatus.COMPLETED, completed_at=timezone.now() - timedelta(minutes=10))
    WorkerProcess.objects.create(
        worker_id="box:7:abc", hostname="box", pid=7, queues=["jobs"], started_at=timezone.now(),
        last_seen_at=timezone.now(),
    )  # fmt: skip
    WorkerProcess.objects.create(
        worker_id="box:8:dead", hostname="box", pid=8, queues=["jobs"], started_at=timezone.now(),
        last_seen_at=timezone.now() - timedelta(minutes=5),
    )  # fmt: skip
    body = APIClient().get("/health/queue", HTTP_X_API_SECRET=settings.JOBSITE_API_SECRET).json()  # an operator
    assert body["status"] == "ok"
    assert "jobs" in body["queues"]
    assert body["processed"] == {"last_minute": 1, "last_hour": 2}
    assert [w["id"] for w in body["workers"]] == ["box:7:abc"]


def test_health_queue_is_503_when_the_broker_is_unreachable(db, settings):
    import dramatiq
    from dramatiq.brokers.redis import RedisBroker

    previous = dramatiq.get_broker()
    unreachable = RedisBroker(url="redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    unreachable.declare_queue("jobs")
    dramatiq.set_broker(unreachable)
    try:
        response = APIClient().get("/health/queue")
    finally:
        dramatiq.set_broker(previous)
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
