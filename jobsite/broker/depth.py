"""How many messages wait in each queue of the Dramatiq broker, as far as the broker can tell.

Every broker reports, per declared queue (canonical names, never `.DQ`/`.XQ`):

- `ready`: deliverable now and not yet fetched by a worker;
- `delayed`: waiting for their `eta`, including those a worker has prefetched
  from the delay queue and holds in memory until then (Dramatiq workers do
  that with up to a thousand delayed messages per thread);
- `in_flight`: fetched by a worker and neither acked nor dead-lettered yet;
- `dead`: dead-lettered.

A count the broker cannot tell is `None`. An unreachable broker raises
:class:`dramatiq.errors.BrokerConnectionError`, whatever the client library's
own error was, so that a caller can answer 503.
"""

from __future__ import annotations

import dramatiq
from dramatiq.broker import Broker
from dramatiq.common import dq_name, q_name
from dramatiq.errors import BrokerConnectionError

UNKNOWN = {"ready": None, "delayed": None, "in_flight": None, "dead": None}


def broker_queue_depths(broker: Broker | None = None) -> dict[str, dict]:
    """Count the messages of each declared queue of `broker` (the current broker by default), by state."""
    from dramatiq.brokers.redis import RedisBroker
    from dramatiq.brokers.stub import StubBroker

    from .backend import DatabaseBroker

    broker = broker or dramatiq.get_broker()
    queues = sorted({name for name in broker.get_declared_queues() if q_name(name) == name})
    if isinstance(broker, DatabaseBroker):
        return _database_depths(broker, queues)
    if isinstance(broker, RedisBroker):
        return _redis_depths(broker, queues)
    if isinstance(broker, StubBroker):
        return _stub_depths(broker, queues)
    if hasattr(broker, "get_queue_message_counts"):
        return _rabbitmq_depths(broker, queues)
    return {queue: dict(UNKNOWN) for queue in queues}


def _database_depths(broker, queues: list[str]) -> dict[str, dict]:
    """One GROUP BY over the `broker_message` rows of the declared queues.

    A leased row counts as in flight until a consumer's housekeeping returns it
    to the queue, even when its lease has run out.
    """
    from django.db import DatabaseError
    from django.db.models import Count, Q
    from django.utils import timezone

    from .models import BrokerMessage

    now = timezone.now()
    ready = Q(state=BrokerMessage.State.READY)
    try:
        rows = list(
            broker.messages.filter(queue_name__in=queues)
            .values("queue_name")
            .annotate(
                ready=Count("id", filter=ready & Q(available_at__lte=now)),
                delayed=Count("id", filter=ready & Q(available_at__gt=now)),
                in_flight=Count("id", filter=Q(state=BrokerMessage.State.LEASED)),
                dead=Count("id", filter=Q(state=BrokerMessage.State.DEAD)),
            )
            .order_by()
        )
    except DatabaseError as exc:
        raise BrokerConnectionError(f"The broker database is unavailable: {exc}") from exc
    depths = {queue: {"ready": 0, "delayed": 0, "in_flight": 0, "dead": 0} for queue in queues}
    for row in rows:
        depths[row.pop("queue_name")] = row
    return depths


def _redis_depths(broker, queues: list[str]) -> dict[str, dict]:
    """Read the keys Dramatiq's `dispatch.lua` keeps under the broker's namespace.

    `{ns}:{queue}` and `{ns}:{queue}.DQ` are lists of waiting message ids,
    `{ns}:{queue}.XQ` a sorted set of dead ones, and `{ns}:__acks__.{worker}.{queue}`
    the set of ids a worker fetched and has not settled. Every worker that
    fetched is in the `{ns}:__heartbeats__` sorted set until its ack sets are
    gone, so the ack sets are found from there rather than by scanning the keyspace.
    """
    import redis

    ns = broker.namespace
    try:
        workers = [
            w.decode() if isinstance(w, bytes) else w for w in broker.client.zrange(f"{ns}:__heartbeats__", 0, -1)
        ]
        pipe = broker.client.pipeline(transaction=False)
        for queue in queues:
            pipe.llen(f"{ns}:{queue}")
            pipe.llen(f"{ns}:{dq_name(queue)}")
            pipe.zcard(f"{ns}:{queue}.XQ")
            for worker in workers:
                pipe.scard(f"{ns}:__acks__.{worker}.{queue}")
                pipe.scard(f"{ns}:__acks__.{worker}.{dq_name(queue)}")
        replies = iter(pipe.execute())
    except redis.RedisError as exc:
        raise BrokerConnectionError(f"Redis is unavailable: {exc}") from exc

    depths = {}
    for queue in queues:
        ready, delayed, dead = next(replies), next(replies), next(replies)
        in_flight = 0
        for _ in workers:
            in_flight += next(replies)
            delayed += next(replies)
        depths[queue] = {"ready": ready, "delayed": delayed, "in_flight": in_flight, "dead": dead}
    return depths


def _stub_depths(broker, queues: list[str]) -> dict[str, dict]:
    """Read the in-process queues: a message taken and not yet settled is an unfinished task."""
    depths = {}
    for queue in queues:
        waiting, delayed = broker.queues[queue], broker.queues[dq_name(queue)]
        depths[queue] = {
            "ready": waiting.qsize(),
            "delayed": delayed.unfinished_tasks,
            "in_flight": waiting.unfinished_tasks - waiting.qsize(),
            "dead": sum(len(broker.dead_letters_by_queue.get(name, ())) for name in (queue, dq_name(queue))),
        }
    return depths


def _rabbitmq_depths(broker, queues: list[str]) -> dict[str, dict]:
    """Ask RabbitMQ for each queue's message count (a passive count of ready messages).

    RabbitMQ does not count unacked messages there: in-flight ones are unknown,
    and delayed ones a worker has prefetched are missing from `delayed`.
    """
    import pika.exceptions

    depths = {}
    try:
        for queue in queues:
            ready, delayed, dead = broker.get_queue_message_counts(queue)
            depths[queue] = {"ready": ready, "delayed": delayed, "in_flight": None, "dead": dead}
    except BrokerConnectionError:
        raise
    except pika.exceptions.AMQPError as exc:
        raise BrokerConnectionError(f"RabbitMQ is unavailable: {exc}") from exc
    return depths
