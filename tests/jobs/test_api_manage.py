"""Submitting in every way (validate, batch, idempotency) and managing jobs (cancel, retry)."""

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from jobs.models import Job, JobStatus, StageRun, StageRunStatus
from jobs.run import job_run
from jobs.services import job_cancel
from pipelines.registry import stage
from tests import credentials
from tests.factories import JobFactory, PipelineFactory

JOBS = "/api/v1/jobs/"
FLAKY_CALLS = {"fail": True, "count": 0}


@stage("test_flaky_once", isolated=False)
def flaky(ctx):
    """Fails while FLAKY_CALLS["fail"] is set."""
    FLAKY_CALLS["count"] += 1
    if FLAKY_CALLS["fail"]:
        raise RuntimeError("downstream unavailable")
    return {"ok": True, "seen": ctx.previous}


@pytest.fixture
def operator_client(operator_user):
    client = APIClient()
    client.credentials(**credentials.jwt_for(operator_user))
    return client


def submit(client, body, **extra):
    return client.post(JOBS, body, format="json", **extra)


# -- validate ------------------------------------------------------------------------


def test_validate_accepts_a_good_submission_and_creates_nothing(service_client, demo_pipelines):
    response = service_client.post(
        JOBS + "validate/", {"pipeline": "text-analysis", "input_data": {"text": "hi"}}, format="json"
    )
    assert response.status_code == 200
    assert response.json() == {"valid": True}
    assert not Job.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"pipeline": "missing", "input_data": {}}, "pipeline"),
        ({"pipeline": "text-analysis", "input_data": {"words": 3}}, "input_data"),
        ({"pipeline": "text-analysis", "input_data": {"text": "x"}, "priority": 99}, "priority"),
    ],
)
def test_validate_reports_errors_without_creating(service_client, demo_pipelines, body, field):
    response = service_client.post(JOBS + "validate/", body, format="json")
    assert response.status_code == 400
    assert field in response.json()["details"]
    assert not Job.objects.exists()


# -- batch ---------------------------------------------------------------------------


def test_batch_creates_valid_items_and_reports_each_invalid_one(service_client, demo_pipelines):
    response = service_client.post(
        JOBS + "batch/",
        {
            "jobs": [
                {"pipeline": "sample_task", "input_data": {"n": 0}},
                {"pipeline": "nope", "input_data": {}},
                "not an object",
                {"pipeline": "sample_task", "input_data": {"n": 3}, "priority": 11},
                {"pipeline": "text-analysis", "input_data": {"text": "four"}},
            ]
        },
        format="json",
    )
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["index"] for r in results] == [0, 1, 2, 3, 4]
    assert [r["status"] for r in results] == [201, 400, 400, 400, 201]
    assert "pipeline" in results[1]["errors"]
    assert "priority" in results[3]["errors"]
    created = {results[0]["job"]["job_id"], results[4]["job"]["job_id"]}
    assert set(map(str, Job.objects.values_list("id", flat=True))) == created


@pytest.mark.parametrize("body", [{"jobs": []}, {"jobs": "x"}, {}, {"jobs": [{}] * 501}])
def test_batch_rejects_empty_missing_or_oversized_lists(service_client, demo_pipelines, body):
    response = service_client.post(JOBS + "batch/", body, format="json")
    assert response.status_code == 400
    assert "jobs" in response.json()["details"]
    assert not Job.objects.exists()


def test_batch_item_for_another_user_is_refused_for_a_submitter(user, other_user, demo_pipelines):
    client = APIClient()
    body = {
        "jobs": [
            {"pipeline": "sample_task", "input_data": {}, "user_id": str(other_user.pk)},
            {"pipeline": "sample_task", "input_data": {}},
        ]
    }
    results = client.post(JOBS + "batch/", body, format="json", **credentials.jwt_for(user)).json()["results"]
    assert [r["status"] for r in results] == [403, 201]
    assert Job.objects.get().user_id == user.pk


# -- idempotency ---------------------------------------------------------------------


def test_repeated_idempotency_key_returns_the_first_job(service_client, demo_pipelines):
    body = {"pipeline": "sample_task", "input_data": {"n": 1}, "idempotency_key": "order-42"}
    first = submit(service_client, body)
    second = submit(service_client, body)
    assert (first.status_code, first.json()["duplicate"]) == (201, False)
    assert (second.status_code, second.json()["duplicate"]) == (200, True)
    assert second.json()["job_id"] == first.json()["job_id"]
    assert Job.objects.count() == 1


def test_idempotency_key_header_works_and_keys_are_per_owner(user, other_user, demo_pipelines):
    client = APIClient()
    body = {"pipeline": "sample_task", "input_data": {}}
    alice = submit(client, body, HTTP_IDEMPOTENCY_KEY="k1", **credentials.jwt_for(user))
    alice_again = submit(client, body, HTTP_IDEMPOTENCY_KEY="k1", **credentials.jwt_for(user))
    bob = submit(client, body, HTTP_IDEMPOTENCY_KEY="k1", **credentials.jwt_for(other_user))
    assert [alice.status_code, alice_again.status_code, bob.status_code] == [201, 200, 201]
    assert alice.json()["idempotency_key"] == "k1"
    assert Job.objects.count() == 2


def test_header_and_body_keys_must_agree(service_client, demo_pipelines):
    response = submit(
        service_client,
        {"pipeline": "sample_task", "input_data": {}, "idempotency_key": "a"},
        HTTP_IDEMPOTENCY_KEY="b",
    )
    assert response.status_code == 400
    assert "idempotency_key" in response.json()["details"]


@pytest.mark.django_db(transaction=True)
def test_concurrent_submissions_with_one_key_create_one_job(demo_pipelines, settings):
    body = {"pipeline": "sample_task", "input_data": {}, "idempotency_key": "race"}
    barrier = threading.Barrier(4)
    statuses = []

    def post():
        client = APIClient()
        client.credentials(HTTP_X_API_SECRET=settings.JOBSITE_API_SECRET)
        barrier.wait()
        try:
            statuses.append(submit(client, body).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=post) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(statuses) == [200, 200, 200, 201]
    assert Job.objects.count() == 1


def test_webhook_fields_are_stored_and_the_secret_never_returned(service_client, demo_pipelines):
    response = submit(
        service_client,
        {
            "pipeline": "sample_task",
            "input_data": {},
            "webhook_url": "https://hooks.example.com/jobs",
            "webhook_secret": "whsec-do-not-echo",
        },
    )
    assert response.status_code == 201
    assert response.json()["webhook_url"] == "https://hooks.example.com/jobs"
    assert "whsec-do-not-echo" not in response.content.decode()
    job = Job.objects.get()
    assert (job.webhook_url, job.webhook_secret) == ("https://hooks.example.com/jobs", "whsec-do-not-echo")
    detail = service_client.get(f"{JOBS}{job.pk}/")
    assert "whsec-do-not-echo" not in detail.content.decode()


def test_bad_webhook_url_is_400(service_client, demo_pipelines):
    response = submit(service_client, {"pipeline": "sample_task", "input_data": {}, "webhook_url": "not a url"})
    assert response.status_code == 400
    assert "webhook_url" in response.json()["details"]


# -- cancel --------------------------------------------------------------------------


@pytest.mark.parametrize("waiting", ["pending", "scheduled", "queued", "retrying"])
def test_waiting_job_is_cancelled_at_once_and_its_message_then_does_nothing(operator_client, waiting):
    job = JobFactory(status=waiting)
    response = operator_client.post(f"{JOBS}{job.pk}/cancel/")
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert job_run(job_id=str(job.pk)) is None
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED
    assert not StageRun.objects.filter(job=job).exists()


def test_delete_cancels_too(operator_client):
    job = JobFactory(status=JobStatus.QUEUED)
    assert operator_client.delete(f"{JOBS}{job.pk}/").status_code == 200
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED


def test_processing_job_becomes_cancelling(operator_client):
    job = JobFactory(status=JobStatus.PROCESSING)
    response = operator_client.post(f"{JOBS}{job.pk}/cancel/")
    assert response.json()["status"] == "cancelling"


@pytest.mark.parametrize("finished", ["completed", "failed", "cancelled"])
def test_cancelling_a_finished_job_is_409(operator_client, finished):
    job = JobFactory(status=finished)
    response = operator_client.post(f"{JOBS}{job.pk}/cancel/")
    assert response.status_code == 409
    assert response.json()["error"] == "invalid_state"
    assert response.json()["details"]["status"] == finished


def test_a_submitter_cancels_and_retries_its_own_jobs_and_never_anothers(user, other_user, stub_broker):
    mine = JobFactory(status=JobStatus.QUEUED, user_id=user.pk)
    theirs = JobFactory(status=JobStatus.QUEUED, user_id=other_user.pk)
    client = APIClient()
    client.credentials(**credentials.jwt_for(user))

    assert client.post(f"{JOBS}{theirs.pk}/cancel/").status_code == 404
    assert client.post(f"{JOBS}{mine.pk}/cancel/").status_code == 200
    assert client.post(f"{JOBS}{theirs.pk}/retry/").status_code == 404
    assert client.post(f"{JOBS}{mine.pk}/retry/").status_code == 200

    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert mine.status in (JobStatus.PENDING, JobStatus.QUEUED)
    assert theirs.status == JobStatus.QUEUED


def test_a_submitters_key_needs_the_cancel_scope(user):
    job = JobFactory(status=JobStatus.QUEUED, user_id=user.pk)
    client = APIClient()
    client.credentials(**credentials.api_key_for(user, scopes=["jobs:create", "jobs:read"]))
    assert client.post(f"{JOBS}{job.pk}/cancel/").status_code == 403
    client.credentials(**credentials.api_key_for(user, scopes=["jobs:cancel"]))
    assert client.post(f"{JOBS}{job.pk}/cancel/").status_code == 200


@pytest.mark.django_db(transaction=True)
def test_worker_stops_a_cancelling_job_inside_a_long_sleep_stage():
    pipeline = PipelineFactory(
        config={
            "stages": [
                {"name": "nap", "type": "sleep", "params": {"seconds": 30}},
                {"name": "after", "type": "echo", "params": {}},
            ]
        }
    )
    job = JobFactory(pipeline=pipeline, status=JobStatus.QUEUED)
    worker = threading.Thread(target=lambda: (job_run(job_id=str(job.pk)), connection.close()))
    started = time.monotonic()
    worker.start()
    deadline = time.monotonic() + 10
    while not Job.objects.filter(pk=job.pk, status=JobStatus.PROCESSING).exists():
        assert time.monotonic() < deadline
        time.sleep(0.05)

    job_cancel(job_id=job.pk)
    worker.join(timeout=10)

    assert time.monotonic() - started < 10
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED
    assert list(StageRun.objects.filter(job=job).values_list("name", "status")) == [("nap", StageRunStatus.CANCELLED)]


def test_job_cancelled_between_stages_stops_at_the_boundary(db, monkeypatch, settings):
    from jobs import run

    settings.JOB_CHECKPOINT_INTERVAL_MS = 0  # every stage's run written as it finishes, the status read with it

    pipeline = PipelineFactory(
        config={"stages": [{"name": "one", "type": "echo", "params": {}}, {"name": "two", "type": "echo"}]}
    )
    job = JobFactory(pipeline=pipeline, status=JobStatus.QUEUED)
    original = run.job_checkpoint

    def cancel_then_checkpoint(**kwargs):
        job_cancel(job_id=job.pk)  # asked while stage "one" ran: the checkpoint reads it back
        return original(**kwargs)

    monkeypatch.setattr(run, "job_checkpoint", cancel_then_checkpoint)
    job_run(job_id=str(job.pk))
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED
    assert list(StageRun.objects.filter(job=job).values_list("name", flat=True)) == ["one"]


# -- retry ---------------------------------------------------------------------------


def _flaky_pipeline():
    return PipelineFactory(
        config={
            "stages": [
                {"name": "first", "type": "echo", "params": {}},
                {"name": "flaky", "type": "test_flaky_once", "params": {}},
                {"name": "last", "type": "echo", "params": {}},
            ]
        }
    )


def test_retry_resumes_at_the_failed_stage_with_saved_outputs(
    operator_client, stub_broker, django_capture_on_commit_callbacks
):
    FLAKY_CALLS.update(fail=True, count=0)
    job = JobFactory(pipeline=_flaky_pipeline(), status=JobStatus.QUEUED, input_data={"x": 1})
    job_run(job_id=str(job.pk))
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED

    FLAKY_CALLS["fail"] = False
    with django_capture_on_commit_callbacks(execute=True):
        response = operator_client.post(f"{JOBS}{job.pk}/retry/", {}, format="json")
    assert response.status_code == 200
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED
    assert stub_broker.queues["jobs"].qsize() == 1

    job_run(job_id=str(job.pk))
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED
    assert job.attempts == 2
    runs = list(StageRun.objects.filter(job=job).order_by("index", "attempt").values_list("name", "attempt", "status"))
    assert runs == [
        ("first", 1, "completed"),
        ("flaky", 1, "failed"),
        ("flaky", 2, "completed"),
        ("last", 1, "completed"),
    ]
    assert job.result.result == {"ok": True, "seen": {"x": 1}}


def test_retry_from_start_reruns_every_stage(operator_client, stub_broker, django_capture_on_commit_callbacks):
    FLAKY_CALLS.update(fail=True, count=0)
    job = JobFactory(pipeline=_flaky_pipeline(), status=JobStatus.QUEUED)
    job_run(job_id=str(job.pk))
    FLAKY_CALLS["fail"] = False
    with django_capture_on_commit_callbacks(execute=True):
        operator_client.post(f"{JOBS}{job.pk}/retry/", {"from_start": True}, format="json")
    job_run(job_id=str(job.pk))
    assert StageRun.objects.filter(job=job, name="first").count() == 2


@pytest.mark.parametrize("state", ["pending", "queued", "processing", "completed", "cancelling"])
def test_retry_of_a_job_that_is_not_failed_or_cancelled_is_409(operator_client, state):
    job = JobFactory(status=state)
    response = operator_client.post(f"{JOBS}{job.pk}/retry/", {}, format="json")
    assert response.status_code == 409
    job.refresh_from_db()
    assert job.status == state


def test_retry_with_a_bad_body_is_400(operator_client):
    job = JobFactory(status=JobStatus.FAILED)
    response = operator_client.post(f"{JOBS}{job.pk}/retry/", {"from_start": "perhaps"}, format="json")
    assert response.status_code == 400
    assert "from_start" in response.json()["details"]


def test_other_users_jobs_are_404_for_cancel_and_retry_too(user, other_user):
    from tests.conftest import grant_role

    grant_role(other_user, "submitter")
    other_user.user_permissions.add(
        *__import__("django.contrib.auth.models", fromlist=["Permission"]).Permission.objects.filter(
            codename__in=["cancel_job", "retry_job"]
        )
    )
    job = JobFactory(status=JobStatus.FAILED, user_id=user.pk)
    client = APIClient()
    assert client.post(f"{JOBS}{job.pk}/cancel/", **credentials.jwt_for(other_user)).status_code == 404
    assert client.post(f"{JOBS}{job.pk}/retry/", **credentials.jwt_for(other_user)).status_code == 404


def test_retrying_a_cancelled_scheduled_job_waits_for_its_run_at_again(
    operator_client, stub_broker, django_capture_on_commit_callbacks
):
    run_at = timezone.now() + timedelta(hours=1)
    job = JobFactory(status=JobStatus.SCHEDULED, run_at=run_at)
    operator_client.post(f"{JOBS}{job.pk}/cancel/")

    with django_capture_on_commit_callbacks(execute=True):
        response = operator_client.post(f"{JOBS}{job.pk}/retry/", {}, format="json")

    assert response.status_code == 200
    job.refresh_from_db()
    assert (job.status, job.run_at) == (JobStatus.SCHEDULED, run_at)
    assert stub_broker.queues["jobs"].qsize() == 0
    assert stub_broker.queues["jobs.DQ"].qsize() == 1  # sent with its delay, not to run at once


def test_a_manual_retry_of_a_job_out_of_attempts_grants_the_pipelines_allowance_again(
    operator_client, stub_broker, settings
):
    settings.JOB_DEFAULT_MAX_ATTEMPTS = 3
    job = JobFactory(status=JobStatus.FAILED, attempts=3, max_attempts=3)

    assert operator_client.post(f"{JOBS}{job.pk}/retry/", {}, format="json").status_code == 200

    job.refresh_from_db()
    assert (job.attempts, job.max_attempts) == (3, 6)
