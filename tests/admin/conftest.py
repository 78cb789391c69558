"""Admin test fixtures: staff users in each role, logged-in clients, jobs in known states."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone

from jobs.models import Job, JobEventType, JobStatus
from tests.conftest import grant_role
from tests.factories import JobEventFactory, JobFactory, PipelineFactory, StageRunFactory, UserFactory


def staff_user(username: str, role: str | None = None, *perms: str):
    """A staff user (may open the admin) in `role`, with any extra permissions."""
    user = UserFactory(username=username, is_staff=True)
    if role:
        grant_role(user, role)
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return user


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def operator(db):
    return staff_user("op", "operator")


@pytest.fixture
def auditor(db):
    return staff_user("aud", "auditor")


@pytest.fixture
def submitter(db):
    """A staff submitter: sees only their own jobs, has no permission to act."""
    return staff_user("sub", "submitter")


@pytest.fixture
def operator_client(operator):
    return client_for(operator)


@pytest.fixture
def pipeline(db):
    return PipelineFactory(name="reports", config={"stages": [{"name": "echo", "type": "echo", "params": {}}]})


def job_retried_twice(pipeline=None):
    """A job that failed its stage twice, was retried after a backoff each time, and completed on attempt 3."""
    base = timezone.now() - timedelta(minutes=5)
    job = JobFactory(status=JobStatus.COMPLETED, attempts=3, locked_by="box:3:cc/Thread-1", **(
        {"pipeline": pipeline} if pipeline else {}))  # fmt: skip
    Job.objects.filter(pk=job.pk).update(
        created_at=base, started_at=base + timedelta(milliseconds=20), completed_at=base + timedelta(seconds=9)
    )
    job.refresh_from_db()
    ms = lambda n: base + timedelta(milliseconds=n)  # noqa: E731
    JobEventFactory(job=job, type=JobEventType.CREATED, data={"status": "pending"}, created_at=base)
    for attempt, (start, worker) in enumerate(((20, "box:1:aa/Thread-1"), (2100, "box:2:bb/Thread-4"),
                                               (6200, "box:3:cc/Thread-1")), start=1):  # fmt: skip
        JobEventFactory(job=job, type=JobEventType.STARTED, data={"attempt": attempt, "worker": worker},
                        created_at=ms(start))  # fmt: skip
        StageRunFactory(job=job, index=0, name="fetch", status="completed" if attempt == 3 else "failed",
                        attempt=attempt, job_attempt=attempt, started_at=ms(start + 5),
                        finished_at=ms(start + 105), duration_ms=100,
                        error="" if attempt == 3 else "ConnectionError: refused",
                        traceback="" if attempt == 3 else "Traceback (most recent call last): ...")  # fmt: skip
        if attempt < 3:
            JobEventFactory(
                job=job, type=JobEventType.RETRYING, created_at=ms(start + 110),
                data={"attempt": attempt, "stage": "fetch", "error": "ConnectionError: refused",
                      "run_at": ms(start + 2000).isoformat(), "delay_ms": 1890},
            )  # fmt: skip
    JobEventFactory(job=job, type=JobEventType.COMPLETED, data={"attempt": 3, "duration_ms": 8980},
                    created_at=base + timedelta(seconds=9))  # fmt: skip
    return job
