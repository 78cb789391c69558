"""Sending many messages in one round trip to the broker.

A batch submission hands hundreds of jobs to the broker at once. Dramatiq sends
one message per call (one Redis round trip, one database insert each); this
sends them together: one multi-row insert on the database broker, one
pipelined round trip on Redis, one call per message elsewhere. Middleware
hooks (`before_enqueue`/`after_enqueue`) run for every message as they would.
"""

from __future__ import annotations

from uuid import uuid4

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.common import current_millis, dq_name
from dramatiq.message import Message

from .backend import DatabaseBroker


def enqueue_many(messages: list[tuple[Message, int | None]], broker: dramatiq.Broker | None = None) -> None:
    """Enqueue `(message, delay_ms)` pairs; raise if the broker did not take them (then none is known sent)."""
    broker = broker or dramatiq.get_broker()
    if not messages:
        return
    if isinstance(broker, DatabaseBroker):
        broker.enqueue_many(messages)
    elif isinstance(broker, RedisBroker):
        _redis_enqueue_many(broker, messages)
    else:
        for message, delay in messages:
            broker.enqueue(message, delay=delay)


def _redis_enqueue_many(broker: RedisBroker, messages: list[tuple[Message, int | None]]) -> None:
    """What RedisBroker.enqueue does for each message, with every script call in one pipeline."""
    pipeline = broker.client.pipeline(transaction=False)
    dispatch = broker.scripts["dispatch"]
    sent = []
    for message, delay in messages:
        queue_name = message.queue_name
        message = message.copy(options={"redis_message_id": str(uuid4())})
        if delay is not None:
            queue_name = dq_name(queue_name)
            message = message.copy(queue_name=queue_name, options={"eta": current_millis() + delay})
        broker.emit_before("enqueue", message, delay)
        args = [
            "enqueue",
            current_millis(),
            queue_name,
            broker.broker_id,
            broker.heartbeat_timeout,
            broker.dead_message_ttl,
            0,  # no maintenance inside a batch
            broker._max_unpack_size(),
            message.options["redis_message_id"],
            message.encode(),
        ]
        dispatch(keys=[broker.namespace], args=args, client=pipeline)
        sent.append((message, delay))
    pipeline.execute()
    for message, delay in sent:
        broker.emit_after("enqueue", message, delay)
