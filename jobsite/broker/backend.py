"""A Dramatiq broker that keeps its queues in the Django database.

It needs no Redis or RabbitMQ: the embedded default for a small deployment or a
development machine. It works on SQLite (IMMEDIATE transactions serialise the
fetch, WAL and a busy timeout keep the web process and the worker apart) and on
PostgreSQL (`SELECT ... FOR UPDATE SKIP LOCKED`).

Delivery is at least once. A consumer leases the rows it fetches and renews the
lease while their messages are in flight; rows whose lease ran out (their
consumer died) return to the queue. Delayed messages wait in the table until
`available_at`, so no worker holds them in memory. A message's `priority` option
(higher first) orders delivery within a queue.

This module must not import models at import time: django-dramatiq builds the
broker while the app registry is still loading.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections import deque
from datetime import timedelta

from dramatiq.broker import Broker, Consumer, MessageProxy
from dramatiq.common import q_name
from dramatiq.errors import ConnectionClosed, QueueJoinTimeout, QueueNotFound
from dramatiq.message import Message

logger = logging.getLogger(__name__)


def _db_errors():
    from django.db import DatabaseError

    return DatabaseError


class DatabaseBroker(Broker):
    """Dramatiq broker backed by the `broker_message` table.

    Parameters:
      middleware: see :class:`dramatiq.Broker`.
      database: the Django database alias to keep messages in.
      lease_seconds: how long a fetched message stays leased without renewal.
      poll_interval_ms: how long an idle consumer waits between fetches.
    """

    def __init__(
        self,
        *,
        middleware=None,
        database: str = "default",
        lease_seconds: int | None = None,
        poll_interval_ms: int | None = None,
    ) -> None:
        super().__init__(middleware=middleware)
        from django.conf import settings

        self.queues: set[str] = set()
        self.database = database
        self.lease_seconds = lease_seconds or getattr(settings, "DB_BROKER_LEASE_SECONDS", 60)
        self.poll_interval = (poll_interval_ms or getattr(settings, "DB_BROKER_POLL_INTERVAL_MS", 200)) / 1000
        self.consumer_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        # Rows this broker has fetched and not yet acked, by queue: shared by the
        # consumers of one queue, since Dramatiq may replace a consumer while its
        # messages are still being processed.
        self._in_flight: dict[str, set[int]] = {}
        self._lock = threading.Lock()

    @property
    def messages(self):
        from .models import BrokerMessage

        return BrokerMessage.objects.using(self.database)

    def consume(self, queue_name: str, prefetch: int = 1, timeout: int = 5000) -> Consumer:
        if queue_name not in self.queues:
            raise QueueNotFound(queue_name)
        return _DatabaseConsumer(self, queue_name, prefetch, timeout)

    def declare_queue(self, queue_name: str) -> None:
        if queue_name in self.queues:
            return
        self.emit_before("declare_queue", queue_name)
        self.queues.add(queue_name)
        self._in_flight.setdefault(queue_name, set())
        self.emit_after("declare_queue", queue_name)

    def enqueue(self, message: Message, *, delay: int | None = None) -> Message:
        from django.utils import timezone

        queue_name = q_name(message.queue_name)
        if queue_name not in self.queues:
            raise QueueNotFound(queue_name)
        message = message.copy(queue_name=queue_name)
        message.options.pop("eta", None)

        self.emit_before("enqueue", message, delay)
        available_at = timezone.now()
        if delay:
            available_at += timedelta(milliseconds=delay)
        try:
            self.messages.create(
                message_id=message.message_id,
                queue_name=queue_name,
                actor_name=message.actor_name,
                priority=int(message.options.get("priority") or 0),
                body=message.encode(),
                available_at=available_at,
            )
        except _db_errors() as exc:
            raise ConnectionClosed(exc) from exc
        self.emit_after("enqueue", message, delay)
        return message

    def get_declared_queues(self) -> set[str]:
        return self.queues.copy()

    def get_declared_delay_queues(self) -> set[str]:
        return set()

    def flush(self, queue_name: str) -> None:
        self.messages.filter(queue_name=q_name(queue_name)).delete()

    def flush_all(self) -> None:
        self.messages.filter(queue_name__in=self.queues).delete()

    def join(self, queue_name: str, *, timeout: int | None = None) -> None:
        """Wait until the queue holds no ready or leased message (tests only)."""
        from .models import BrokerMessage

        deadline = timeout and time.monotonic() + timeout / 1000
        pending = self.messages.filter(
            queue_name=q_name(queue_name),
            state__in=[BrokerMessage.State.READY, BrokerMessage.State.LEASED],
        )
        while pending.exists():
            if deadline and time.monotonic() > deadline:
                raise QueueJoinTimeout(queue_name)
            time.sleep(self.poll_interval)

    # -- used by the consumers -------------------------------------------------

    def _track(self, queue_name: str, row_ids) -> None:
        with self._lock:
            self._in_flight[queue_name].update(row_ids)

    def _untrack(self, queue_name: str, row_ids) -> None:
        with self._lock:
            self._in_flight[queue_name].difference_update(row_ids)

    def _tracked(self, queue_name: str) -> list[int]:
        with self._lock:
            return list(self._in_flight[queue_name])


class _DatabaseMessageProxy(MessageProxy):
    def __init__(self, message: Message, row_id: int) -> None:
        super().__init__(message)
        self.row_id = row_id


class _DatabaseConsumer(Consumer):
    def __init__(self, broker: DatabaseBroker, queue_name: str, prefetch: int, timeout: int) -> None:
        self.broker = broker
        self.queue_name = queue_name
        self.prefetch = prefetch
        self.timeout = timeout / 1000
        self.buffer: deque[_DatabaseMessageProxy] = deque()
        self.next_housekeeping = 0.0

    # Every database call is wrapped so that a lost connection surfaces as a
    # Dramatiq connection error: the worker then retries acks and restarts the
    # consumer instead of crashing.
    def _call(self, fn, *args):
        from django.db import connections

        try:
            return fn(*args)
        except _db_errors() as exc:
            connections[self.broker.database].close()
            raise ConnectionClosed(exc) from exc

    def ack(self, message: _DatabaseMessageProxy) -> None:
        self._call(self._finish, message, None)

    def nack(self, message: _DatabaseMessageProxy) -> None:
        self._call(self._finish, message, "dead")

    def _finish(self, message: _DatabaseMessageProxy, outcome: str | None) -> None:
        from django.utils import timezone

        from .models import BrokerMessage

        mine = self.broker.messages.filter(id=message.row_id, consumer_id=self.broker.consumer_id)
        if outcome == "dead":
            done = mine.update(state=BrokerMessage.State.DEAD, dead_at=timezone.now(), lease_expires_at=None)
        else:
            done, _ = mine.delete()
        self.broker._untrack(self.queue_name, [message.row_id])
        if not done:
            logger.warning("Message %s had lost its lease before it was settled.", message.message_id)

    def requeue(self, messages) -> None:
        row_ids = [m.row_id for m in messages]
        if row_ids:
            self._call(self._release, row_ids)

    def _release(self, row_ids: list[int]) -> None:
        from .models import BrokerMessage

        self.broker.messages.filter(id__in=row_ids, consumer_id=self.broker.consumer_id).update(
            state=BrokerMessage.State.READY, consumer_id="", lease_expires_at=None
        )
        self.broker._untrack(self.queue_name, row_ids)

    def close(self) -> None:
        unhandled = [m.row_id for m in self.buffer]
        self.buffer.clear()
        if unhandled:
            try:
                self._call(self._release, unhandled)
            except ConnectionClosed:
                logger.warning("Could not release %d prefetched messages; their lease will expire.", len(unhandled))

    def __next__(self) -> _DatabaseMessageProxy | None:
        deadline = time.monotonic() + self.timeout
        while True:
            if time.monotonic() >= self.next_housekeeping:
                self._call(self._housekeeping)
            if self.buffer:
                return self.buffer.popleft()
            room = self.prefetch - len(self.broker._tracked(self.queue_name))
            if room > 0:
                fetched = self._call(self._fetch, room)
                if fetched:
                    self.buffer.extend(fetched)
                    continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            time.sleep(min(self.broker.poll_interval, remaining))

    def _housekeeping(self) -> None:
        """Renew the leases of in-flight rows and return expired leases to the queue."""
        from django.utils import timezone

        from .models import BrokerMessage

        now = timezone.now()
        lease = timedelta(seconds=self.broker.lease_seconds)
        in_flight = self.broker._tracked(self.queue_name)
        if in_flight:
            self.broker.messages.filter(id__in=in_flight, consumer_id=self.broker.consumer_id).update(
                lease_expires_at=now + lease
            )
        expired = self.broker.messages.filter(
            queue_name=self.queue_name, state=BrokerMessage.State.LEASED, lease_expires_at__lt=now
        ).update(state=BrokerMessage.State.READY, consumer_id="", lease_expires_at=None)
        if expired:
            logger.warning("Returned %d messages with expired leases to queue %r.", expired, self.queue_name)
        self.next_housekeeping = time.monotonic() + self.broker.lease_seconds / 3

    def _fetch(self, limit: int) -> list[_DatabaseMessageProxy]:
        from django.db import connections, transaction
        from django.db.models import F
        from django.utils import timezone

        from .models import BrokerMessage

        now = timezone.now()
        ready = self.broker.messages.filter(
            queue_name=self.queue_name, state=BrokerMessage.State.READY, available_at__lte=now
        )
        # An idle poll is one plain read: no transaction, and on SQLite no write lock.
        if not ready.exists():
            return []
        with transaction.atomic(using=self.broker.database):
            candidates = ready.order_by("-priority", "available_at", "id")
            if connections[self.broker.database].features.has_select_for_update_skip_locked:
                candidates = candidates.select_for_update(skip_locked=True)
            rows = list(candidates.values_list("id", "body")[:limit])
            if not rows:
                return []
            row_ids = [row_id for row_id, _ in rows]
            self.broker.messages.filter(id__in=row_ids).update(
                state=BrokerMessage.State.LEASED,
                consumer_id=self.broker.consumer_id,
                lease_expires_at=now + timedelta(seconds=self.broker.lease_seconds),
                deliveries=F("deliveries") + 1,
            )
        self.broker._track(self.queue_name, row_ids)
        return [_DatabaseMessageProxy(Message.decode(bytes(body)), row_id) for row_id, body in rows]
