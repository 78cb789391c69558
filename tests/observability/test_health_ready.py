"""`/health/ready`: the database, the broker, a live worker on every queue, and an outbox that is not backing up."""

from datetime import timedelta

import dramatiq
import pytest
from django.utils import timezone
from dramatiq.brokers.redis import RedisBroker
from rest_framework.test import APIClient

from jobs.models import Job, JobEvent, JobStatus, WorkerProcess
from tests import credentials
from tests.factories import JobFactory

QUEUES = ["jobs", "jobs.high", "jobs.urgent", "maintenance", "webhooks"]


def worker(queues, *, seen_ago=timedelta(0), n=[0]):  # noqa: B006  a counter for unique ids
    n[0] += 1
    now = timezone.now()
    return WorkerProcess.objects.create(
        worker_id=f"box:{n[0]}:abc",
        hostname="box",
        pid=n[0],
        queues=queues,
        started_at=now - seen_ago,
        last_seen_at=now - seen_ago,
    )


def ready(**headers):
    return APIClient().get("/health/ready", **headers)


@pytest.fixture
def operator(operator_user):
    return credentials.jwt_for(operator_user)


@pytest.mark.parametrize("path", ["/health/ready", "/health/ready/"])
def test_ready_when_every_queue_has_a_live_worker(path, db, stub_broker, settings):
    worker(QUEUES)
    response = APIClient().get(path)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_not_ready_while_a_queue_has_no_live_worker_and_an_operator_sees_which(db, stub_broker, operator, settings):
    worker(["jobs", "jobs.high"])
    worker(QUEUES, seen_ago=timedelta(seconds=settings.WORKER_DEAD_AFTER_SECONDS + 5))  # gone silent

    public = ready()
    detail = ready(**operator)

    assert public.status_code == 503
    assert public.json() == {"status": "unavailable"}
    assert detail.status_code == 503
    workers = detail.json()["checks"]["workers"]
    assert workers == {"ok": False, "queues_without_workers": ["jobs.urgent", "maintenance", "webhooks"]}
    assert detail.json()["checks"]["database"] == {"ok": True}


def test_workers_stopped_cleanly_do_not_count(db, stub_broker):
    stopped = worker(QUEUES)
    assert ready().status_code == 200
    WorkerProcess.objects.filter(pk=stopped.pk).update(stopped_at=timezone.now())
    assert ready().status_code == 503


def test_not_ready_when_pending_jobs_pile_up_past_the_limit(db, stub_broker, operator, settings):
    settings.READY_OUTBOX_BACKLOG_MAX = 2
    worker(QUEUES)
    old = timezone.now() - timedelta(seconds=settings.JOB_OUTBOX_RESEND_SECONDS + 5)
    jobs = [JobFactory(status=JobStatus.PENDING) for _ in range(3)]
    JobFactory(status=JobStatus.PENDING)  # just submitted: within its grace

    Job.objects.filter(pk__in=[j.pk for j in jobs[:2]]).update(updated_at=old)
    assert ready().status_code == 200  # two: at the limit
    Job.objects.filter(pk=jobs[2].pk).update(updated_at=old)
    response = ready(**operator)

    assert response.status_code == 503
    outbox = response.json()["checks"]["outbox"]
    assert (outbox["ok"], outbox["pending_jobs"], outbox["limit"]) == (False, 3, 2)


def test_events_waiting_too_long_for_their_dispatch_make_it_not_ready(db, stub_broker, settings):
    settings.READY_OUTBOX_BACKLOG_MAX = 0
    worker(QUEUES)
    job = JobFactory(status=JobStatus.COMPLETED, webhook_url="https://example.com/hook")
    fresh = timezone.now()
    event = JobEvent.objects.create(job=job, type="job.completed", notify=True, created_at=fresh)

    assert ready().status_code == 200  # within its grace period: the dispatcher has it in hand

    old = fresh - timedelta(seconds=settings.JOB_EVENT_DISPATCH_GRACE_SECONDS + 5)
    JobEvent.objects.filter(pk=event.pk).update(created_at=old)
    assert ready().status_code == 503


@pytest.fixture
def unreachable_broker():
    previous = dramatiq.get_broker()
    broker = RedisBroker(url="redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    for queue in previous.get_declared_queues():
        broker.declare_queue(queue)
    dramatiq.set_broker(broker)
    yield broker
    dramatiq.set_broker(previous)


def test_not_ready_when_the_broker_does_not_answer(db, unreachable_broker, operator):
    worker(QUEUES)
    response = ready(**operator)
    assert response.status_code == 503
    assert response.json()["checks"]["broker"]["ok"] is False


def test_liveness_asks_nothing_of_the_database(db, django_assert_num_queries):
    with django_assert_num_queries(0):
        assert APIClient().get("/health").status_code == 200
