"""Dead-lettered messages of the configured Dramatiq broker: list them, requeue them, purge them.

Every broker keeps dead letters per queue (canonical names, never `.DQ`/`.XQ`):

- the database broker: `broker_message` rows in state `dead`;
- Redis: the `{ns}:{queue}.XQ` sorted set of message ids (scored by when they
  died) with their bodies in the `{ns}:{queue}.XQ.msgs` hash;
- RabbitMQ: the `{queue}.XQ` queue, read without acknowledging (so the
  messages stay) and acknowledged only when requeued or purged;
- the StubBroker: `dead_letters_by_queue`.

Requeueing sends the message again to its canonical queue, without its delay
and with the same message id; purging deletes it. An unreachable broker
raises :class:`dramatiq.errors.BrokerConnectionError`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import dramatiq
from dramatiq.broker import Broker
from dramatiq.common import dq_name, q_name, xq_name
from dramatiq.errors import BrokerConnectionError
from dramatiq.message import Message

LIST_LIMIT = 100


@dataclass(frozen=True)
class DeadLetter:
    message_id: str
    queue_name: str
    actor_name: str
    args: tuple
    kwargs: dict
    options: dict
    enqueued_at: datetime | None
    dead_at: datetime | None

    @property
    def error(self) -> str:
        """The traceback or message the Retries middleware stored, when there is one."""
        return str(self.options.get("traceback") or self.options.get("retries_exhausted_error") or "")


def _from_message(message: Message, queue: str, dead_at: datetime | None) -> DeadLetter:
    return DeadLetter(
        message_id=message.message_id,
        queue_name=queue,
        actor_name=message.actor_name,
        args=tuple(message.args),
        kwargs=dict(message.kwargs),
        options=dict(message.options),
        enqueued_at=datetime.fromtimestamp(message.message_timestamp / 1000, tz=UTC),
        dead_at=dead_at,
    )


def _requeueable(message: Message, queue: str) -> Message:
    options = {k: v for k, v in message.options.items() if k not in ("eta", "traceback", "retries")}
    return message.copy(queue_name=queue, options=options)


def _kind(broker: Broker) -> str:
    from dramatiq.brokers.redis import RedisBroker
    from dramatiq.brokers.stub import StubBroker

    from .backend import DatabaseBroker

    if isinstance(broker, DatabaseBroker):
        return "db"
    if isinstance(broker, RedisBroker):
        return "redis"
    if isinstance(broker, StubBroker):
        return "stub"
    if hasattr(broker, "get_queue_message_counts"):
        return "rabbitmq"
    return "unknown"


def dead_letter_queues(broker: Broker | None = None) -> list[str]:
    """The broker's declared queues (canonical names)."""
    broker = broker or dramatiq.get_broker()
    return sorted({name for name in broker.get_declared_queues() if q_name(name) == name})


def dead_letters(broker: Broker | None = None, *, queue: str, limit: int = LIST_LIMIT) -> list[DeadLetter]:
    """Up to `limit` dead letters of `queue`, the most recent first where the broker records when they died."""
    broker = broker or dramatiq.get_broker()
    return _BROKERS[_kind(broker)].list(broker, queue, limit)


def dead_letters_requeue(broker: Broker | None = None, *, queue: str, message_ids: Iterable[str] | None = None) -> int:
    """Send dead letters of `queue` back to it (all of them when `message_ids` is None); return how many.

    Writes an audit row naming the queue and the messages.
    """
    broker = broker or dramatiq.get_broker()
    ids = None if message_ids is None else set(message_ids)
    count = _BROKERS[_kind(broker)].requeue(broker, queue, ids)
    _audit("requeue", queue, ids, count)
    return count


def dead_letters_purge(broker: Broker | None = None, *, queue: str, message_ids: Iterable[str] | None = None) -> int:
    """Delete dead letters of `queue` (all of them when `message_ids` is None); return how many.

    Writes an audit row naming the queue and the messages.
    """
    broker = broker or dramatiq.get_broker()
    ids = None if message_ids is None else set(message_ids)
    count = _BROKERS[_kind(broker)].purge(broker, queue, ids)
    _audit("purge", queue, ids, count)
    return count


def _audit(verb: str, queue: str, ids: set[str] | None, count: int) -> None:
    # The broker is not transactional with the database: the row follows the change.
    from django.db import transaction

    from audit.services import audit_record

    details = {"count": count, "message_ids": sorted(ids)[:100] if ids is not None else "all"}
    with transaction.atomic():
        audit_record(app="broker", entity="dead_letter", verb=verb, resource_id=queue, details=details)


class _Database:
    @staticmethod
    def _dead(broker, queue, ids):
        from .models import BrokerMessage

        rows = broker.messages.filter(queue_name=queue, state=BrokerMessage.State.DEAD)
        return rows if ids is None else rows.filter(message_id__in=ids)

    @classmethod
    def list(cls, broker, queue, limit):
        from django.db import DatabaseError

        try:
            rows = list(cls._dead(broker, queue, None).order_by("-dead_at", "-id")[:limit])
        except DatabaseError as exc:
            raise BrokerConnectionError(f"The broker database is unavailable: {exc}") from exc
        return [_from_message(Message.decode(bytes(row.body)), queue, row.dead_at) for row in rows]

    @classmethod
    def requeue(cls, broker, queue, ids):
        from django.db import transaction
        from django.utils import timezone

        from .models import BrokerMessage

        with transaction.atomic(using=broker.database):
            rows = list(cls._dead(broker, queue, ids).select_for_update())
            for row in rows:
                message = _requeueable(Message.decode(bytes(row.body)), queue)
                broker.messages.filter(pk=row.pk).update(
                    state=BrokerMessage.State.READY,
                    body=message.encode(),
                    available_at=timezone.now(),
                    consumer_id="",
                    lease_expires_at=None,
                    dead_at=None,
                )
        return len(rows)

    @classmethod
    def purge(cls, broker, queue, ids):
        deleted, _ = cls._dead(broker, queue, ids).delete()
        return deleted


class _Redis:
    @staticmethod
    def _keys(broker, queue):
        key = f"{broker.namespace}:{xq_name(queue)}"
        return key, f"{key}.msgs"

    @classmethod
    def _call(cls, fn):
        import redis

        try:
            return fn()
        except redis.RedisError as exc:
            raise BrokerConnectionError(f"Redis is unavailable: {exc}") from exc

    @classmethod
    def list(cls, broker, queue, limit):
        xq, bodies = cls._keys(broker, queue)

        def read():
            scored = broker.client.zrevrange(xq, 0, limit - 1, withscores=True)
            ids = [m.decode() if isinstance(m, bytes) else m for m, _ in scored]
            data = broker.client.hmget(bodies, ids) if ids else []
            return [
                _from_message(Message.decode(body), queue, datetime.fromtimestamp(score / 1000, tz=UTC))
                for (_, score), body in zip(scored, data, strict=True)
                if body is not None
            ]

        return cls._call(read)

    @classmethod
    def _selected(cls, broker, queue, ids) -> list[tuple[str, bytes]]:
        """(Redis member id, body) of the dead letters whose message id is in `ids` (all when None).

        Members are keyed by the broker's own `redis_message_id`, not the
        message id, so the bodies are read to match.
        """
        xq, bodies = cls._keys(broker, queue)
        members = [m.decode() if isinstance(m, bytes) else m for m in broker.client.zrange(xq, 0, -1)]
        data = broker.client.hmget(bodies, members) if members else []
        return [
            (member, body)
            for member, body in zip(members, data, strict=True)
            if body is not None and (ids is None or Message.decode(body).message_id in ids)
        ]

    @classmethod
    def requeue(cls, broker, queue, ids):
        xq, bodies = cls._keys(broker, queue)

        def run():
            selected = cls._selected(broker, queue, ids)
            for message_id, body in selected:
                broker.enqueue(_requeueable(Message.decode(body), queue))
                broker.client.pipeline().zrem(xq, message_id).hdel(bodies, message_id).execute()
            return len(selected)

        return cls._call(run)

    @classmethod
    def purge(cls, broker, queue, ids):
        xq, bodies = cls._keys(broker, queue)

        def run():
            selected = [message_id for message_id, _ in cls._selected(broker, queue, ids)]
            if selected:
                broker.client.pipeline().zrem(xq, *selected).hdel(bodies, *selected).execute()
            return len(selected)

        return cls._call(run)


class _RabbitMQ:
    """Reads the `.XQ` queue on a channel of its own; unacknowledged messages return to it when the channel closes."""

    @classmethod
    def _each(cls, broker, queue, handle, limit=None) -> int:
        import pika
        import pika.exceptions

        done = 0
        try:
            connection = pika.BlockingConnection(broker.parameters)
        except pika.exceptions.AMQPError as exc:
            raise BrokerConnectionError(f"RabbitMQ is unavailable: {exc}") from exc
        try:
            channel = connection.channel()
            seen = 0
            while limit is None or seen < limit:
                method, properties, body = channel.basic_get(xq_name(queue), auto_ack=False)
                if method is None:
                    break
                seen += 1
                if handle(Message.decode(body), properties):
                    channel.basic_ack(method.delivery_tag)
                    done += 1
            channel.close()
        except pika.exceptions.AMQPError as exc:
            raise BrokerConnectionError(f"RabbitMQ is unavailable: {exc}") from exc
        finally:
            if connection.is_open:
                connection.close()
        return done

    @classmethod
    def list(cls, broker, queue, limit):
        found = []

        def keep(message, properties):
            found.append(_from_message(message, queue, None))
            return False

        cls._each(broker, queue, keep, limit)
        return found

    @classmethod
    def requeue(cls, broker, queue, ids):
        def send(message, properties):
            if ids is not None and message.message_id not in ids:
                return False
            broker.enqueue(_requeueable(message, queue))
            return True

        return cls._each(broker, queue, send)

    @classmethod
    def purge(cls, broker, queue, ids):
        return cls._each(broker, queue, lambda message, properties: ids is None or message.message_id in ids)


class _Stub:
    @classmethod
    def list(cls, broker, queue, limit):
        proxies = [*broker.dead_letters_by_queue.get(queue, ()), *broker.dead_letters_by_queue.get(dq_name(queue), ())]
        return [_from_message(proxy._message, queue, None) for proxy in reversed(proxies)][:limit]

    @classmethod
    def _take(cls, broker, queue, ids) -> list[Message]:
        taken: list[Message] = []
        for name in (queue, dq_name(queue)):
            proxies = broker.dead_letters_by_queue.get(name)
            if not proxies:
                continue
            chosen = {id(p) for p in proxies if ids is None or p.message_id in ids}
            taken += [p._message for p in proxies if id(p) in chosen]
            # In place: the broker's consumers hold this list.
            proxies[:] = [p for p in proxies if id(p) not in chosen]
        return taken

    @classmethod
    def requeue(cls, broker, queue, ids):
        taken = cls._take(broker, queue, ids)
        for message in taken:
            broker.enqueue(_requeueable(message, queue))
        return len(taken)

    @classmethod
    def purge(cls, broker, queue, ids):
        return len(cls._take(broker, queue, ids))


class _Unknown:
    @staticmethod
    def list(broker, queue, limit):
        return []

    @staticmethod
    def requeue(broker, queue, ids):
        return 0

    @staticmethod
    def purge(broker, queue, ids):
        return 0


_BROKERS = {"db": _Database, "redis": _Redis, "rabbitmq": _RabbitMQ, "stub": _Stub, "unknown": _Unknown}
