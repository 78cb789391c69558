"""A job's message delivered twice at once runs the job once."""

import threading

import pytest
from django.db import connection

from jobs.models import Job, JobStatus, StageRun
from jobs.run import job_run
from tests.factories import JobFactory, PipelineFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_concurrent_deliveries_of_one_job_run_it_once():
    pipeline = PipelineFactory(config={"stages": [{"name": "nap", "type": "sleep", "params": {"seconds": 0.3}}]})
    job = JobFactory(pipeline=pipeline, status=JobStatus.QUEUED)
    start = threading.Barrier(4)
    outcomes = []

    def deliver():
        start.wait()
        try:
            outcomes.append(job_run(job_id=str(job.pk)))
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED
    assert job.attempts == 1
    assert StageRun.objects.filter(job=job).count() == 1
    assert sum(outcome is not None for outcome in outcomes) == 1


def test_message_for_a_finished_job_changes_nothing():
    job = JobFactory(status=JobStatus.COMPLETED, attempts=1)
    assert job_run(job_id=str(job.pk)) is None
    job.refresh_from_db()
    assert (job.status, job.attempts) == (JobStatus.COMPLETED, 1)
    assert not Job.objects.filter(status=JobStatus.PROCESSING).exists()


def test_a_claim_waits_for_a_row_lock_held_by_the_submitter_instead_of_skipping_the_job():
    """The submitter marks a job `queued` just after sending its message; a fast worker must not lose it.

    A claim that skipped the locked row would ack the message and strand the job.
    """
    if connection.vendor != "postgresql":
        pytest.skip("row locks are PostgreSQL's; SQLite serialises writers")
    from django.db import connections, transaction

    pipeline = PipelineFactory(config={"stages": [{"name": "e", "type": "echo"}]})
    job = JobFactory(pipeline=pipeline, status=JobStatus.PENDING)
    locked, release = threading.Event(), threading.Event()

    def submitter_marks_queued():
        try:
            with transaction.atomic():
                Job.objects.filter(pk=job.pk, status=JobStatus.PENDING).update(status=JobStatus.QUEUED)
                locked.set()
                release.wait(5)
        finally:
            connections.close_all()

    holder = threading.Thread(target=submitter_marks_queued)
    holder.start()
    assert locked.wait(5)
    threading.Timer(0.3, release.set).start()

    outcome = job_run(job_id=str(job.pk))

    holder.join(5)
    assert outcome == JobStatus.COMPLETED
    job.refresh_from_db()
    assert (job.status, job.attempts) == (JobStatus.COMPLETED, 1)
