"""The database broker's own behaviour: poison rows, outages, bad priorities, retention, batched acks, wake-ups."""

import threading
import time
from datetime import timedelta

import dramatiq
import pytest
from django.db import DataError, OperationalError, connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from dramatiq.errors import ConnectionClosed
from dramatiq.message import Message

from jobsite.broker.backend import DatabaseBroker
from jobsite.broker.models import BrokerMessage

pytestmark = pytest.mark.django_db(transaction=True)

QUEUE = "dbsuite"


def _broker(**options) -> DatabaseBroker:
    broker = DatabaseBroker(middleware=[], **{"poll_interval_ms": 20, **options})
    broker.declare_queue(QUEUE)
    return broker


def _message(n=0, **options) -> Message:
    return Message(queue_name=QUEUE, actor_name="db_suite_actor", args=(n,), kwargs={}, options=options)


def _rows(state):
    return BrokerMessage.objects.filter(queue_name=QUEUE, state=state)


def test_an_undecodable_message_is_dead_lettered_and_frees_its_prefetch_slot():
    broker = _broker()
    BrokerMessage.objects.create(
        message_id="poison", queue_name=QUEUE, actor_name="db_suite_actor", body=b"\xff not json",
        available_at=timezone.now() - timedelta(seconds=1),
    )  # fmt: skip
    ran = []

    @dramatiq.actor(broker=broker, queue_name=QUEUE, actor_name="db_suite_actor")
    def actor(n):
        ran.append(n)

    for n in range(6):
        broker.enqueue(_message(n))
    worker = dramatiq.Worker(broker, worker_timeout=50, worker_threads=1)
    worker.start()
    try:
        deadline = time.monotonic() + 10
        while len(ran) < 6 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        worker.stop()
    assert sorted(ran) == list(range(6))
    assert list(_rows(BrokerMessage.State.DEAD).values_list("message_id", flat=True)) == ["poison"]
    assert broker._tracked(QUEUE) == []


def test_close_stops_tracking_prefetched_rows_it_could_not_release(monkeypatch):
    broker = _broker()
    for n in range(3):
        broker.enqueue(_message(n))
    consumer = broker.consume(QUEUE, prefetch=3, timeout=200)
    assert next(consumer) is not None
    assert len(broker._tracked(QUEUE)) == 3

    def outage(*args):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(consumer, "_release", outage)
    consumer.close()

    # Two prefetched rows could not go back: no longer renewed, their lease runs out for another consumer.
    assert len(broker._tracked(QUEUE)) == 1


@pytest.mark.parametrize("priority", [40_000, -40_000, "high", 1.5, True])
def test_a_priority_the_broker_cannot_store_is_refused_before_anything_is_written(priority):
    broker = _broker()

    with pytest.raises(ValueError, match="priority"):
        broker.enqueue(_message(priority=priority))

    assert not BrokerMessage.objects.filter(queue_name=QUEUE).exists()


def test_only_connection_failures_become_connection_errors(monkeypatch):
    from django.db.models.query import QuerySet

    broker = _broker()
    manager = QuerySet

    def permanent(self, objs, **kwargs):
        raise DataError("value out of range")

    monkeypatch.setattr(manager, "bulk_create", permanent)
    with pytest.raises(DataError):
        broker.enqueue(_message())

    def transient(self, objs, **kwargs):
        raise OperationalError("could not connect to server")

    monkeypatch.setattr(manager, "bulk_create", transient)
    with pytest.raises(ConnectionClosed):
        broker.enqueue(_message())


def test_dead_letters_older_than_the_retention_are_pruned():
    broker = _broker()
    now = timezone.now()
    for message_id, age_days in (("old", 8), ("recent", 2)):
        BrokerMessage.objects.create(
            message_id=message_id, queue_name=QUEUE, actor_name="a", body=b"{}", available_at=now,
            state=BrokerMessage.State.DEAD, dead_at=now - timedelta(days=age_days),
        )  # fmt: skip
    broker.enqueue(_message())

    assert broker.prune_dead_letters(older_than=timedelta(days=7)) == 1

    assert list(_rows(BrokerMessage.State.DEAD).values_list("message_id", flat=True)) == ["recent"]
    assert _rows(BrokerMessage.State.READY).count() == 1


def test_the_hourly_maintenance_prunes_past_the_configured_retention(settings, monkeypatch):
    from dramatiq_crontab import scheduler

    from jobsite.broker.actors import broker_prune_dead_letters

    broker = _broker()
    monkeypatch.setattr(dramatiq, "get_broker", lambda: broker)
    settings.DB_BROKER_DEAD_LETTER_TTL_DAYS = 3
    now = timezone.now()
    for message_id, age_days in (("four days", 4), ("two days", 2)):
        BrokerMessage.objects.create(
            message_id=message_id, queue_name=QUEUE, actor_name="a", body=b"{}", available_at=now,
            state=BrokerMessage.State.DEAD, dead_at=now - timedelta(days=age_days),
        )  # fmt: skip

    broker_prune_dead_letters.fn()

    assert list(_rows(BrokerMessage.State.DEAD).values_list("message_id", flat=True)) == ["two days"]
    # Scheduled by `manage.py crontab`, on the maintenance queue.
    scheduled = {job.name: job.trigger for job in scheduler.get_jobs()}
    assert scheduled["broker_prune_dead_letters"].interval == timedelta(hours=1)
    assert broker_prune_dead_letters.queue_name == "maintenance"


def test_acks_from_worker_threads_touch_no_connection_and_are_deleted_in_one_batch():
    broker = _broker()
    for n in range(5):
        broker.enqueue(_message(n))
    consumer = broker.consume(QUEUE, prefetch=5, timeout=200)
    taken = [next(consumer) for _ in range(5)]

    def ack_all():
        with CaptureQueriesContext(connection) as queries:
            for message in taken:
                consumer.ack(message)
        acked_queries.extend(queries.captured_queries)
        connection.close()

    acked_queries: list = []
    thread = threading.Thread(target=ack_all)
    thread.start()
    thread.join()
    assert acked_queries == []
    assert _rows(BrokerMessage.State.LEASED).count() == 5

    with CaptureQueriesContext(connection) as queries:
        assert next(consumer) is None
    deletes = [q["sql"] for q in queries.captured_queries if "DELETE" in q["sql"]]
    assert len(deletes) == 1
    assert not BrokerMessage.objects.filter(queue_name=QUEUE).exists()


def _two_taken_and_acked(messages: int):
    """A consumer (prefetch 2) of `messages` enqueued ones, having taken and acked the first two."""
    broker = _broker()
    for n in range(messages):
        broker.enqueue(_message(n))
    consumer = broker.consume(QUEUE, prefetch=2, timeout=200)
    first = [next(consumer), next(consumer)]
    for message in first:
        consumer.ack(message)
    return consumer, first


def test_on_postgresql_the_acks_are_deleted_by_the_statement_that_fetches_the_next_messages():
    if connection.vendor != "postgresql":
        pytest.skip("SQLite deletes the acks with a statement of their own")
    consumer, first = _two_taken_and_acked(messages=4)

    with CaptureQueriesContext(connection) as queries:
        third = next(consumer)
    assert third.args == (2,)
    assert len(queries.captured_queries) == 1  # the acks' DELETE and the lease, one round trip
    assert not BrokerMessage.objects.filter(pk__in=[m.row_id for m in first]).exists()
    assert _rows(BrokerMessage.State.LEASED).count() == 2  # the two just fetched


def test_acks_whose_delete_failed_are_kept_and_deleted_by_the_next_statement_that_can():
    consumer, first = _two_taken_and_acked(messages=3)

    def lose_the_connection_on_delete(execute, sql, params, many, context):
        if "DELETE" in sql:
            raise OperationalError("server closed the connection unexpectedly")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(lose_the_connection_on_delete), pytest.raises(ConnectionClosed):
        next(consumer)
    assert BrokerMessage.objects.filter(pk__in=[m.row_id for m in first]).count() == 2

    assert next(consumer).args == (2,)
    assert not BrokerMessage.objects.filter(pk__in=[m.row_id for m in first]).exists()


def test_an_acked_message_whose_lease_ran_out_before_its_delete_is_not_delivered_again():
    """Acks kept through an outage longer than the lease: the restarted consumer deletes them before it
    returns expired leases to the queue."""
    broker = _broker(lease_seconds=1)
    broker.enqueue(_message(7))
    consumer = broker.consume(QUEUE, prefetch=1, timeout=200)
    consumer.ack(next(consumer))
    time.sleep(1.5)  # the row's lease runs out while its ack waits

    restarted = broker.consume(QUEUE, prefetch=1, timeout=200)
    assert next(restarted) is None
    assert not BrokerMessage.objects.filter(queue_name=QUEUE).exists()


def test_an_ack_wakes_a_consumer_whose_prefetch_window_is_full():
    broker = _broker(poll_interval_ms=10_000)
    for n in range(2):
        broker.enqueue(_message(n))
    consumer = broker.consume(QUEUE, prefetch=1, timeout=30_000)
    first = next(consumer)
    got = []

    def take_next():
        got.append((next(consumer), time.monotonic()))
        connection.close()

    thread = threading.Thread(target=take_next)
    thread.start()
    time.sleep(0.3)
    acked_at = time.monotonic()
    consumer.ack(first)
    thread.join(timeout=15)

    (message, at) = got[0]
    assert message.args == (1,)
    assert at - acked_at < 2  # woken by the ack, not by the 10 s poll


def test_a_new_message_wakes_an_idle_consumer_at_once_on_postgresql():
    if connection.vendor != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's; SQLite polls")
    consumer_broker = _broker(poll_interval_ms=10_000)
    consumer = consumer_broker.consume(QUEUE, prefetch=1, timeout=30_000)
    assert consumer.listening
    time.sleep(0.5)  # the listener connects
    got = []

    def take_next():
        got.append((next(consumer), time.monotonic()))
        connection.close()

    thread = threading.Thread(target=take_next)
    thread.start()
    time.sleep(0.3)
    sent_at = time.monotonic()
    _broker().enqueue(_message(42))  # another process's broker, as the web server's
    thread.join(timeout=15)
    consumer_broker.close()

    (message, at) = got[0]
    assert message.args == (42,)
    assert at - sent_at < 2  # notified, not found by the 10 s poll
