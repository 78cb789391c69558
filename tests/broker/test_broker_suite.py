"""One broker suite, run against the database broker and the Redis broker.

The database broker runs on whatever database the suite uses (SQLite by
default, PostgreSQL in CI); the Redis broker on `REDIS_URL`.
"""

import threading
import time
import uuid

import dramatiq
import pytest
from django.db import connection
from django_dramatiq.middleware import DbConnectionsMiddleware
from dramatiq.brokers.redis import RedisBroker
from dramatiq.message import Message
from dramatiq.middleware import AgeLimit, Callbacks, Retries, TimeLimit

from jobsite.broker.backend import DatabaseBroker
from jobsite.broker.models import BrokerMessage

pytestmark = pytest.mark.django_db(transaction=True)

QUEUE = "suite"


def _middleware():
    return [AgeLimit(), TimeLimit(), Callbacks(), Retries(), DbConnectionsMiddleware()]


class BrokerKit:
    """Makes brokers of one kind that share their queues, as separate processes would."""

    def __init__(self, kind, redis_url=None):
        self.kind = kind
        self.redis_url = redis_url
        self.namespace = f"jobsite-test-{uuid.uuid4().hex[:8]}"
        self.brokers = []

    def new(self, *, lease_seconds=30):
        if self.kind == "db":
            broker = DatabaseBroker(middleware=_middleware(), lease_seconds=lease_seconds, poll_interval_ms=20)
        else:
            broker = RedisBroker(
                url=self.redis_url,
                namespace=self.namespace,
                middleware=_middleware(),
                heartbeat_timeout=lease_seconds * 1000,
                maintenance_chance=1_000_000,
            )
        broker.declare_queue(QUEUE)
        self.brokers.append(broker)
        return broker

    def dead_letters(self, broker):
        if self.kind == "db":
            return BrokerMessage.objects.filter(queue_name=QUEUE, state=BrokerMessage.State.DEAD).count()
        return broker.client.zcard(f"{self.namespace}:{QUEUE}.XQ")

    def close(self):
        for broker in self.brokers:
            broker.close()


@pytest.fixture(params=["db", "redis"])
def kit(request):
    redis_url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    kit = BrokerKit(request.param, redis_url)
    yield kit
    kit.close()


def _message(n=0):
    return Message(queue_name=QUEUE, actor_name="suite_actor", args=(n,), kwargs={}, options={})


def _drain(consumer, count, *, timeout=10.0):
    """Take up to `count` messages from a consumer within `timeout` seconds."""
    received = []
    deadline = time.monotonic() + timeout
    while len(received) < count and time.monotonic() < deadline:
        message = next(consumer)
        if message is not None:
            received.append(message)
    return received


def _wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def test_enqueued_messages_are_consumed_in_order_and_gone_once_acked(kit):
    broker = kit.new()
    sent = [broker.enqueue(_message(n)) for n in range(3)]

    consumer = broker.consume(QUEUE, prefetch=10, timeout=200)
    received = _drain(consumer, 3)
    assert [m.args[0] for m in received] == [0, 1, 2]
    assert {m.message_id for m in received} == {m.message_id for m in sent}
    for message in received:
        consumer.ack(message)
    consumer.close()

    fresh = kit.new().consume(QUEUE, prefetch=10, timeout=300)
    assert _drain(fresh, 1, timeout=1.0) == []


def test_consumer_takes_no_more_than_its_prefetch(kit):
    broker = kit.new()
    for n in range(5):
        broker.enqueue(_message(n))

    consumer = broker.consume(QUEUE, prefetch=2, timeout=200)
    assert len(_drain(consumer, 5, timeout=1.5)) == 2


def test_delayed_message_runs_after_its_delay(kit):
    broker = kit.new()
    ran_at = []

    @dramatiq.actor(broker=broker, queue_name=QUEUE, actor_name="suite_delayed", max_retries=0)
    def delayed():
        ran_at.append(time.monotonic())

    sent_at = time.monotonic()
    delayed.send_with_options(delay=800)
    worker = dramatiq.Worker(broker, worker_timeout=50, worker_threads=1)
    worker.start()
    try:
        assert _wait_for(lambda: ran_at, timeout=10)
    finally:
        worker.stop()
    assert ran_at[0] - sent_at >= 0.8


def test_failed_message_is_dead_lettered_not_redelivered(kit):
    broker = kit.new()
    calls = []

    @dramatiq.actor(broker=broker, queue_name=QUEUE, actor_name="suite_failing", max_retries=0)
    def failing():
        calls.append(1)
        raise RuntimeError("boom")

    failing.send()
    worker = dramatiq.Worker(broker, worker_timeout=50, worker_threads=1)
    worker.start()
    try:
        assert _wait_for(lambda: kit.dead_letters(broker) == 1)
        time.sleep(0.3)
    finally:
        worker.stop()
    assert calls == [1]


def test_message_of_a_dead_consumer_is_redelivered_after_its_lease(kit):
    dead = kit.new(lease_seconds=1)
    sent = dead.enqueue(_message(7))
    taken = _drain(dead.consume(QUEUE, prefetch=1, timeout=200), 1)
    assert [m.message_id for m in taken] == [sent.message_id]
    # The first consumer now "dies": it neither acks nor renews its lease.

    survivor = kit.new(lease_seconds=1).consume(QUEUE, prefetch=1, timeout=200)
    redelivered = _drain(survivor, 1, timeout=10)
    assert [m.message_id for m in redelivered] == [sent.message_id]
    survivor.ack(redelivered[0])


def test_live_consumer_keeps_its_message_past_the_lease(kit):
    holder_broker = kit.new(lease_seconds=1)
    holder_broker.enqueue(_message(1))
    # Room for one more message, so the holder keeps polling the broker as a
    # worker's consumer does while its threads are busy.
    holder = holder_broker.consume(QUEUE, prefetch=2, timeout=100)
    taken = _drain(holder, 1)
    assert len(taken) == 1

    other = kit.new(lease_seconds=1).consume(QUEUE, prefetch=1, timeout=100)
    deadline = time.monotonic() + 2.5
    stolen = []
    while time.monotonic() < deadline:
        assert next(holder) is None  # a live consumer keeps renewing while it polls
        message = next(other)
        if message is not None:
            stolen.append(message)
    assert stolen == []
    holder.ack(taken[0])


def test_two_consumers_never_receive_the_same_message(kit):
    producer = kit.new()
    sent = {producer.enqueue(_message(n)).message_id for n in range(120)}
    received: list[list[str]] = [[], []]

    def consume(slot):
        consumer = kit.new().consume(QUEUE, prefetch=8, timeout=300)
        ready.wait(30)  # both consumers start together: neither drains the queue while the other connects
        idle_since = time.monotonic()
        while time.monotonic() - idle_since < 1.5:
            message = next(consumer)
            if message is None:
                continue
            received[slot].append(message.message_id)
            time.sleep(0.005)  # a message takes some work: a consumer does not drain 120 before the other's first fetch
            consumer.ack(message)
            idle_since = time.monotonic()
        consumer.close()
        connection.close()

    ready = threading.Barrier(2)
    threads = [threading.Thread(target=consume, args=(slot,)) for slot in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    everything = received[0] + received[1]
    assert len(everything) == len(set(everything)), "a message was delivered to both consumers"
    assert set(everything) == sent
    assert received[0] and received[1], "both consumers should have taken part"


def test_database_broker_delivers_higher_priority_first(transactional_db):
    broker = BrokerKit("db").new()
    for n, priority in enumerate([0, 5, 10, 5]):
        message = _message(n)
        broker.enqueue(message.copy(options={"priority": priority}))

    received = _drain(broker.consume(QUEUE, prefetch=10, timeout=200), 4)
    assert [m.args[0] for m in received] == [2, 1, 3, 0]
