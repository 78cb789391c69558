"""Operator services beyond cancel and retry: requeue a stuck job, delete a job (jobs.operations)."""

import os
from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.utils import timezone

from audit.context import AuditContext, audit_context
from audit.models import AuditLog
from jobs.models import Job, JobEvent, JobResult, JobStatus, StageRun
from jobs.operations import job_delete, job_requeue
from jobs.services import JobStateError
from tests.factories import JobEventFactory, JobFactory, StageRunFactory

pytestmark = pytest.mark.django_db


def sent_job_ids(broker):
    from dramatiq.message import Message

    queue = broker.queues["jobs"]
    return [Message.decode(data).args[0] for data in list(queue.queue)]


def test_requeue_puts_a_held_job_back_on_the_queue_and_records_why(stub_broker, django_capture_on_commit_callbacks):
    job = JobFactory(status=JobStatus.PROCESSING, locked_by="box:1:aa/Thread-1", attempts=1, max_attempts=3)
    StageRunFactory(job=job, status="running", finished_at=None)
    with django_capture_on_commit_callbacks(execute=True), audit_context(AuditContext(source="admin", user=None)):
        assert job_requeue(job_id=job.pk, reason="stuck, requeued by op") == "requeue"
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED  # sent again after the commit
    # No longer held (locked_at cleared); locked_by keeps naming the worker of the last attempt.
    assert job.locked_at is None and job.locked_by == "box:1:aa/Thread-1" and job.attempts == 1
    assert str(job.pk) in sent_job_ids(stub_broker)
    assert StageRun.objects.get(job=job).error == "Interrupted: stuck, requeued by op"
    row = AuditLog.objects.get(resource_id=str(job.pk))
    assert row.action == "admin.job.requeue"
    assert row.request_details["operation"] == {"reason": "stuck, requeued by op"}


def test_requeue_follows_recoverys_rule_for_spent_attempts_and_cancel_requests(stub_broker):
    spent = JobFactory(status=JobStatus.PROCESSING, locked_by="box:1:aa/T-1", attempts=3, max_attempts=3)
    cancelling = JobFactory(status=JobStatus.CANCELLING, locked_by="box:1:aa/T-2", attempts=1)
    assert job_requeue(job_id=spent.pk) == "fail"
    assert job_requeue(job_id=cancelling.pk) == "cancel"
    assert Job.objects.get(pk=spent.pk).status == JobStatus.FAILED
    assert Job.objects.get(pk=cancelling.pk).status == JobStatus.CANCELLED


def test_requeue_resends_a_waiting_jobs_message_and_refuses_finished_jobs(stub_broker):
    queued = JobFactory(status=JobStatus.QUEUED, queued_at=timezone.now() - timedelta(minutes=30))
    assert job_requeue(job_id=queued.pk) == "resend"
    assert sent_job_ids(stub_broker) == [str(queued.pk)]
    assert AuditLog.objects.get(resource_id=str(queued.pk)).action == "jobs.job.resend"
    done = JobFactory(status=JobStatus.COMPLETED)
    with pytest.raises(JobStateError):
        job_requeue(job_id=done.pk)


def test_delete_removes_the_job_its_runs_events_result_and_file_with_an_audit_row(
    settings, django_capture_on_commit_callbacks
):
    job = JobFactory(status=JobStatus.COMPLETED)
    StageRunFactory(job=job)
    JobEventFactory(job=job)
    result = JobResult(job=job, size_bytes=2)
    result.result_file.save(f"{job.pk}.json", ContentFile(b"{}"), save=False)
    result.save()
    path = result.result_file.path
    with django_capture_on_commit_callbacks(execute=True), audit_context(AuditContext(source="admin", user=None)):
        job_delete(job_id=job.pk)
    assert not Job.objects.filter(pk=job.pk).exists()
    assert not StageRun.objects.filter(job_id=job.pk).exists()
    assert not JobEvent.objects.filter(job_id=job.pk).exists()
    assert not os.path.exists(path)
    row = AuditLog.objects.get(resource_id=str(job.pk))
    assert (row.action, row.request_details["operation"]) == ("admin.job.delete", {"status": "completed"})


def test_a_held_job_cannot_be_deleted():
    job = JobFactory(status=JobStatus.PROCESSING, locked_by="box:1:aa/T-1")
    with pytest.raises(JobStateError):
        job_delete(job_id=job.pk)
    assert Job.objects.filter(pk=job.pk).exists()
    assert not AuditLog.objects.exists()
