"""Bulk operations (jobs.bulk): an action over every job matching a filter, in the background, in chunks."""

from datetime import timedelta

import dramatiq
import pytest
from django.utils import timezone

from audit.context import AuditContext, audit_context
from audit.models import AuditLog
from jobs import bulk
from jobs.dashboard import JobCriteria
from jobs.models import BulkOperation, BulkOperationStatus, Job, JobStatus
from tests.admin.conftest import staff_user
from tests.factories import JobFactory, PipelineFactory


@pytest.fixture
def small_chunks(monkeypatch):
    """Three jobs per chunk and one chunk per step, so that a handful of jobs takes several steps."""
    monkeypatch.setattr(bulk, "CHUNK_SIZE", 3)
    monkeypatch.setattr(bulk, "STEP_SECONDS", 0.0)


def run_maintenance_worker(broker):
    worker = dramatiq.Worker(broker, worker_timeout=50, queues={"maintenance"})
    worker.start()
    try:
        broker.join("maintenance", fail_fast=True)
        worker.join()
    finally:
        worker.stop()


def steps_until_done(operation, budget=0.0) -> int:
    count = 0
    while bulk.bulk_operation_step(operation_id=operation.pk, budget_seconds=budget) is not None:
        count += 1
        assert count < 100
    return count + 1


@pytest.mark.django_db(transaction=True)
def test_retry_all_matching_runs_on_the_worker_in_chunks_with_an_audit_row_per_job(stub_broker, small_chunks):
    operator = staff_user("op", "operator")
    alpha, beta = PipelineFactory(name="alpha"), PipelineFactory(name="beta")
    failed = [JobFactory(pipeline=alpha, status=JobStatus.FAILED, error_message="boom") for _ in range(7)]
    others = [JobFactory(pipeline=beta, status=JobStatus.FAILED), JobFactory(pipeline=alpha, status="completed")]

    with audit_context(AuditContext(source="admin", user=operator)):
        operation = bulk.bulk_operation_start(
            kind="retry",
            criteria=JobCriteria.from_params({"status": "failed", "pipeline": "alpha"}),
            requested_by=operator,
        )
    late = JobFactory(pipeline=alpha, status=JobStatus.FAILED)  # created after the snapshot
    run_maintenance_worker(stub_broker)

    operation.refresh_from_db()
    assert operation.status == BulkOperationStatus.COMPLETED
    assert (operation.total, operation.done, operation.succeeded, operation.skipped, operation.failed) == (
        7,
        7,
        7,
        0,
        0,
    )
    assert operation.summary["outcomes"] == {"retried": 7}
    assert operation.description == "status failed; pipeline alpha"
    assert operation.finished_at is not None
    assert {j.status for j in Job.objects.filter(pk__in=[j.pk for j in failed])} <= {"pending", "queued"}
    assert [Job.objects.get(pk=j.pk).status for j in [*others, late]] == ["failed", "completed", "failed"]
    rows = AuditLog.objects.filter(action="admin.job.retry")
    assert sorted(rows.values_list("resource_id", flat=True)) == sorted(str(j.pk) for j in failed)
    assert set(rows.values_list("principal", flat=True)) == {"op"}
    assert AuditLog.objects.filter(action="admin.bulk_operation.start", resource_id=str(operation.pk)).exists()


@pytest.mark.django_db
def test_each_step_continues_from_the_cursor_until_none_is_left(stub_broker, small_chunks):
    jobs = [JobFactory(status=JobStatus.QUEUED) for _ in range(8)]
    operation = bulk.bulk_operation_start(kind="cancel", criteria=JobCriteria(statuses=("queued",)), requested_by=None)
    assert steps_until_done(operation) == 4  # chunks of 3, 3, 2, then the empty one that finishes
    operation.refresh_from_db()
    assert operation.status == BulkOperationStatus.COMPLETED
    assert operation.done == operation.succeeded == 8
    assert operation.cursor == str(max(j.pk for j in jobs))
    assert set(Job.objects.values_list("status", flat=True)) == {"cancelled"}


@pytest.mark.django_db
def test_a_job_whose_state_changed_meanwhile_is_skipped_and_counted_by_status():
    done, failed = JobFactory(status=JobStatus.COMPLETED), JobFactory(status=JobStatus.FAILED)
    operation = BulkOperation.objects.create(kind="retry", criteria={}, total=2)
    bulk._run_chunk(operation, JobCriteria(), [done, failed])
    operation.refresh_from_db()
    assert (operation.done, operation.succeeded, operation.skipped) == (2, 1, 1)
    assert operation.summary["skipped_by_status"] == {"completed": 1}


@pytest.mark.django_db
def test_a_stopped_operation_stops_after_its_current_chunk(small_chunks):
    for _ in range(7):
        JobFactory(status=JobStatus.FAILED)
    queued = bulk.bulk_operation_start(kind="retry", criteria=JobCriteria(), requested_by=None)
    assert bulk.bulk_operation_stop(operation_id=queued.pk).status == BulkOperationStatus.CANCELLED
    assert bulk.bulk_operation_step(operation_id=queued.pk) is None

    running = bulk.bulk_operation_start(kind="delete", criteria=JobCriteria(), requested_by=None)
    assert bulk.bulk_operation_step(operation_id=running.pk, budget_seconds=0) == 0
    bulk.bulk_operation_stop(operation_id=running.pk)
    assert bulk.bulk_operation_step(operation_id=running.pk) is None
    running.refresh_from_db()
    assert (running.status, running.done) == (BulkOperationStatus.CANCELLED, 3)
    assert Job.objects.count() == 4


@pytest.mark.django_db
def test_a_second_run_waits_for_the_lease_of_the_first():
    JobFactory(status=JobStatus.FAILED)
    operation = bulk.bulk_operation_start(kind="retry", criteria=JobCriteria(), requested_by=None)
    BulkOperation.objects.filter(pk=operation.pk).update(
        status=BulkOperationStatus.RUNNING, lease_expires_at=timezone.now() + timedelta(seconds=20)
    )
    delay = bulk.bulk_operation_step(operation_id=operation.pk)
    assert 20_000 <= delay <= 22_000
    assert Job.objects.get().status == JobStatus.FAILED


@pytest.mark.django_db
def test_retry_of_a_failure_group_takes_only_the_jobs_whose_normalised_error_matches():
    pipeline = PipelineFactory(name="alpha")
    group = [JobFactory(pipeline=pipeline, status="failed", error_message=f"KeyError: 'c{n}'") for n in range(3)]
    other = JobFactory(pipeline=pipeline, status="failed", error_message="KeyError in the parser")
    criteria = JobCriteria(statuses=("failed",), pipeline="alpha", error_group="KeyError: <str>")
    operation = bulk.bulk_operation_start(kind="retry", criteria=criteria, requested_by=None)
    steps_until_done(operation, budget=5)
    operation.refresh_from_db()
    assert (operation.total, operation.succeeded) == (3, 3)
    assert {Job.objects.get(pk=j.pk).status for j in group} == {"pending"}
    assert Job.objects.get(pk=other.pk).status == "failed"


@pytest.mark.django_db
def test_an_owner_scoped_operation_never_touches_other_users_jobs():
    submitter = staff_user("sub", "submitter", "jobs.cancel_job")
    mine = JobFactory(status=JobStatus.QUEUED, user_id=submitter.pk)
    theirs = JobFactory(status=JobStatus.QUEUED)
    criteria = JobCriteria(owner=str(submitter.pk))
    operation = bulk.bulk_operation_start(kind="cancel", criteria=criteria, requested_by=submitter)
    steps_until_done(operation, budget=5)
    assert Job.objects.get(pk=mine.pk).status == "cancelled"
    assert Job.objects.get(pk=theirs.pk).status == "queued"


@pytest.mark.django_db
def test_unknown_kinds_are_refused():
    with pytest.raises(ValueError):
        bulk.bulk_operation_start(kind="explode", criteria=JobCriteria(), requested_by=None)
