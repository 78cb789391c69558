"""Sending many messages at once: one insert on the database broker, one pipelined round trip on Redis."""

import pytest
import redis
from django.db import connection
from django.test.utils import CaptureQueriesContext
from dramatiq import Middleware
from dramatiq.brokers.redis import RedisBroker
from dramatiq.message import Message

from jobsite.broker.backend import DatabaseBroker
from jobsite.broker.bulk import enqueue_many
from jobsite.broker.models import BrokerMessage

pytestmark = pytest.mark.django_db(transaction=True)

QUEUE = "bulk"


class Recorder(Middleware):
    def __init__(self):
        self.before, self.after = [], []

    def before_enqueue(self, broker, message, delay):
        self.before.append(message.message_id)

    def after_enqueue(self, broker, message, delay):
        self.after.append((message.message_id, delay))


def _messages(n, delay_every=None):
    return [
        (Message(queue_name=QUEUE, actor_name="bulk_actor", args=(i,), kwargs={}, options={}),
         1000 if delay_every and i % delay_every == 0 else None)
        for i in range(n)
    ]  # fmt: skip


def test_the_database_broker_writes_a_batch_with_one_insert():
    recorder = Recorder()
    broker = DatabaseBroker(middleware=[recorder])
    broker.declare_queue(QUEUE)
    messages = _messages(50, delay_every=10)

    with CaptureQueriesContext(connection) as queries:
        enqueue_many(messages, broker=broker)

    inserts = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("INSERT")]
    assert len(inserts) == 1
    assert BrokerMessage.objects.filter(queue_name=QUEUE).count() == 50
    assert recorder.before == [m.message_id for m, _ in messages]
    assert [delay for _, delay in recorder.after] == [d for _, d in messages]


def test_redis_gets_a_batch_in_one_pipelined_round_trip(redis_url, monkeypatch):
    recorder = Recorder()
    broker = RedisBroker(url=redis_url, namespace="bulk-test", middleware=[recorder])
    broker.declare_queue(QUEUE)
    executed = []
    original = redis.client.Pipeline.execute

    def execute(self, *args, **kwargs):
        executed.append(len(self.command_stack))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(redis.client.Pipeline, "execute", execute)
    messages = _messages(30, delay_every=3)

    enqueue_many(messages, broker=broker)

    assert executed == [30]
    client = redis.Redis.from_url(redis_url)
    assert client.llen(f"bulk-test:{QUEUE}") == 20
    assert client.llen(f"bulk-test:{QUEUE}.DQ") == 10
    assert len(recorder.after) == 30
    consumer = broker.consume(QUEUE, prefetch=30, timeout=500)
    received = [next(consumer) for _ in range(20)]
    assert sorted(m.args[0] for m in received) == [i for i in range(30) if i % 3]
