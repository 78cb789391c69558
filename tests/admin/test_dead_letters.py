"""Dead letters on every broker (jobsite.broker.dead_letters): really dead-lettered by a worker, then listed,
requeued and purged."""

import os
import time
import uuid

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker

from audit.models import AuditLog
from jobsite.broker import dead_letters
from jobsite.broker.backend import DatabaseBroker
from jobsite.broker.depth import broker_queue_depths
from tests.conftest import require_service

RABBITMQ_URL = os.environ.get("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")


def _rabbitmq_broker():
    import pika
    from dramatiq.brokers.rabbitmq import RabbitmqBroker

    try:
        pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL)).close()
    except Exception as exc:
        require_service("rabbitmq", f"RabbitMQ at {RABBITMQ_URL} is unreachable: {exc}")
    return RabbitmqBroker(url=RABBITMQ_URL)


@pytest.fixture(params=["stub", "db", "redis", "rabbitmq"])
def broker(request):
    queue = f"admin-dl-{uuid.uuid4().hex[:8]}"
    if request.param == "stub":
        made = StubBroker()
    elif request.param == "db":
        made = DatabaseBroker(lease_seconds=30, poll_interval_ms=20)
    elif request.param == "redis":
        from dramatiq.brokers.redis import RedisBroker

        made = RedisBroker(url=request.getfixturevalue("redis_url"), namespace=f"dl-{uuid.uuid4().hex[:6]}")
    else:
        made = _rabbitmq_broker()
    made.test_queue = queue
    yield made
    if request.param == "rabbitmq":
        channel = made.channel
        for name in (queue, f"{queue}.DQ", f"{queue}.XQ"):
            channel.queue_delete(name)
    made.close()


def kill(broker, *args) -> list[str]:
    """Send one message per argument to an actor that always fails, and let a worker dead-letter them."""
    queue = broker.test_queue

    def always_fails(n):
        raise RuntimeError(f"cannot handle {n}")

    actor = dramatiq.actor(always_fails, broker=broker, actor_name=f"fails_{queue}", queue_name=queue, max_retries=0)
    ids = [actor.send(arg).message_id for arg in args]
    worker = dramatiq.Worker(broker, worker_timeout=50, worker_threads=1)
    worker.start()
    try:
        deadline = time.monotonic() + 20
        while len(dead_letters.dead_letters(broker, queue=queue)) < len(args):
            assert time.monotonic() < deadline, "the worker did not dead-letter the messages"
            time.sleep(0.05)
    finally:
        worker.stop()
    return ids


@pytest.mark.django_db(transaction=True)
def test_dead_letters_are_listed_requeued_with_their_id_and_purged(broker):
    queue = broker.test_queue
    first, second = kill(broker, 1, 2)
    assert dead_letters.dead_letter_queues(broker) == [queue]

    listed = dead_letters.dead_letters(broker, queue=queue)
    assert {m.message_id for m in listed} == {first, second}
    assert {m.args for m in listed} == {(1,), (2,)}
    assert {m.actor_name for m in listed} == {f"fails_{queue}"}
    assert broker_queue_depths(broker)[queue]["dead"] in (2, None)

    assert dead_letters.dead_letters_requeue(broker, queue=queue, message_ids=[first]) == 1
    assert [m.message_id for m in dead_letters.dead_letters(broker, queue=queue)] == [second]
    depth = broker_queue_depths(broker)[queue]
    assert (depth["ready"], depth["delayed"]) == (1, 0)

    assert dead_letters.dead_letters_purge(broker, queue=queue) == 1
    assert dead_letters.dead_letters(broker, queue=queue) == []
    assert broker_queue_depths(broker)[queue]["ready"] == 1  # the requeued one is untouched

    rows = AuditLog.objects.filter(resource_type="dead_letter").order_by("id")
    assert [(r.action, r.resource_id) for r in rows] == [
        ("broker.dead_letter.requeue", queue),
        ("broker.dead_letter.purge", queue),
    ]
    assert rows[0].request_details["operation"] == {"count": 1, "message_ids": [first]}
    assert rows[1].request_details["operation"] == {"count": 1, "message_ids": "all"}


@pytest.mark.django_db(transaction=True)
def test_a_requeued_dead_letter_runs_again():
    broker = StubBroker()
    broker.test_queue = "admin-dl-rerun"
    ran = []

    def flaky(n):
        if not ran:
            ran.append("failed")
            raise RuntimeError("first time")
        ran.append(n)

    actor = dramatiq.actor(flaky, broker=broker, actor_name="flaky", queue_name="admin-dl-rerun", max_retries=0)
    message_id = actor.send(7).message_id
    worker = dramatiq.Worker(broker, worker_timeout=50)
    worker.start()
    try:
        broker.join("admin-dl-rerun", fail_fast=False)
        worker.join()
        assert [m.message_id for m in dead_letters.dead_letters(broker, queue="admin-dl-rerun")] == [message_id]
        dead_letters.dead_letters_requeue(broker, queue="admin-dl-rerun")
        broker.join("admin-dl-rerun", fail_fast=False)
        worker.join()
    finally:
        worker.stop()
    assert ran == ["failed", 7]
    assert dead_letters.dead_letters(broker, queue="admin-dl-rerun") == []
