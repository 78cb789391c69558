"""A Dramatiq broker that keeps its queues in the Django database.

It needs no Redis or RabbitMQ: the embedded default for a small deployment or a
development machine. It works on SQLite (IMMEDIATE transactions serialise the
fetch, WAL and a busy timeout keep the web process and the worker apart) and on
PostgreSQL (one `UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED)
RETURNING` per fetch).

Delivery is at least once. A consumer leases the rows it fetches and renews the
lease while their messages are in flight; rows whose lease ran out (their
consumer died) return to the queue. Delayed messages wait in the table until
`available_at`, so no worker holds them in memory. A message's `priority` option
(higher first) orders delivery within a queue.

Because the messages live in the application's own database, an enqueue inside
a transaction commits or rolls back with it (`enqueues_in_transaction`): a job
and its message are written together.

A consumer never sleeps on a fixed interval while work is possible: an ack
that frees room in its prefetch window wakes it at once, and on PostgreSQL a
`NOTIFY` sent with every enqueue wakes idle consumers of that queue (one
listening connection per process). Otherwise an idle consumer looks every
`poll_interval_ms` (on SQLite for new messages; everywhere for delayed ones
coming due). Acks are collected and deleted in batches by the consumer, on
PostgreSQL in the statement of its next fetch.

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
from contextlib import contextmanager
from datetime import timedelta

from dramatiq.broker import Broker, Consumer, MessageProxy
from dramatiq.common import q_name
from dramatiq.errors import ConnectionClosed, QueueJoinTimeout, QueueNotFound
from dramatiq.message import Message

logger = logging.getLogger(__name__)

NOTIFY_CHANNEL = "jobsite_broker"
# The `priority` column is a smallint.
PRIORITY_RANGE = range(-32768, 32768)
# How long the listener waits on its connection before checking whether to stop.
LISTEN_TIMEOUT_SECONDS = 1.0


def _transient_errors():
    """Database errors that mean the connection or server is unavailable, not that the request is wrong."""
    from django.db import InterfaceError, OperationalError

    return (OperationalError, InterfaceError)


def _checked_priority(message: Message) -> int:
    priority = message.options.get("priority") or 0
    if isinstance(priority, bool) or not isinstance(priority, int) or priority not in PRIORITY_RANGE:
        raise ValueError(f"Message priority must be an integer from -32768 to 32767, not {priority!r}.")
    return priority


class DatabaseBroker(Broker):
    """Dramatiq broker backed by the `broker_message` table.

    Parameters:
      middleware: see :class:`dramatiq.Broker`.
      database: the Django database alias to keep messages in.
      lease_seconds: how long a fetched message stays leased without renewal.
      poll_interval_ms: how long an idle consumer waits between fetches when it cannot be notified (SQLite).
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
        # Rows this broker has fetched and not yet settled, by queue: shared by the
        # consumers of one queue, since Dramatiq may replace a consumer while its
        # messages are still being processed.
        self._in_flight: dict[str, set[int]] = {}
        # Acked rows waiting for their consumer to delete them, by queue.
        self._acked: dict[str, list[int]] = {}
        self._lock = threading.Lock()
        # Signalled when an ack frees room or a notification says a queue has work;
        # `_signalled` keeps a signal that came while no consumer was waiting.
        self._wakeups: dict[str, threading.Condition] = {}
        self._signalled: dict[str, bool] = {}
        self._listener: _Listener | None = None

    @property
    def enqueues_in_transaction(self) -> bool:
        """An enqueue made inside a transaction of the default database commits or rolls back with it."""
        return self.database == "default"

    @property
    def messages(self):
        from .models import BrokerMessage

        return BrokerMessage.objects.using(self.database)

    def _connection(self):
        from django.db import connections

        return connections[self.database]

    def _is_postgresql(self) -> bool:
        return self._connection().vendor == "postgresql"

    def consume(self, queue_name: str, prefetch: int = 1, timeout: int = 5000) -> Consumer:
        if queue_name not in self.queues:
            raise QueueNotFound(queue_name)
        if self._is_postgresql():
            self._start_listener()
        return _DatabaseConsumer(self, queue_name, prefetch, timeout)

    def declare_queue(self, queue_name: str) -> None:
        if queue_name in self.queues:
            return
        self.emit_before("declare_queue", queue_name)
        self.queues.add(queue_name)
        self._in_flight.setdefault(queue_name, set())
        self._acked.setdefault(queue_name, [])
        self._wakeups.setdefault(queue_name, threading.Condition(self._lock))
        self._signalled.setdefault(queue_name, False)
        self.emit_after("declare_queue", queue_name)

    def enqueue(self, message: Message, *, delay: int | None = None) -> Message:
        return self.enqueue_many([(message, delay)])[0]

    def enqueue_many(self, messages: list[tuple[Message, int | None]]) -> list[Message]:
        """Enqueue several messages with one multi-row insert (and one notification per queue)."""
        from django.db import transaction
        from django.utils import timezone

        from .models import BrokerMessage

        now = timezone.now()
        rows, enqueued = [], []
        for message, delay in messages:
            queue_name = q_name(message.queue_name)
            if queue_name not in self.queues:
                raise QueueNotFound(queue_name)
            message = message.copy(queue_name=queue_name)
            message.options.pop("eta", None)
            priority = _checked_priority(message)
            self.emit_before("enqueue", message, delay)
            rows.append(
                BrokerMessage(
                    message_id=message.message_id,
                    queue_name=queue_name,
                    actor_name=message.actor_name,
                    priority=priority,
                    body=message.encode(),
                    available_at=now + timedelta(milliseconds=delay) if delay else now,
                    enqueued_at=now,
                )
            )
            enqueued.append((message, delay))
        try:
            with transaction.atomic(using=self.database):
                self.messages.bulk_create(rows)
                if self._is_postgresql():
                    with self._connection().cursor() as cursor:
                        for queue_name in sorted({row.queue_name for row in rows}):
                            cursor.execute("SELECT pg_notify(%s, %s)", [NOTIFY_CHANNEL, queue_name])
        except _transient_errors() as exc:
            raise ConnectionClosed(exc) from exc
        for message, delay in enqueued:
            self.emit_after("enqueue", message, delay)
        return [message for message, _ in enqueued]

    def get_declared_queues(self) -> set[str]:
        return self.queues.copy()

    def get_declared_delay_queues(self) -> set[str]:
        return set()

    def flush(self, queue_name: str) -> None:
        self.messages.filter(queue_name=q_name(queue_name)).delete()

    def flush_all(self) -> None:
        self.messages.filter(queue_name__in=self.queues).delete()

    def close(self) -> None:
        if self._listener is not None:
            self._listener.stop()
            self._listener = None
        super().close()

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

    def prune_dead_letters(self, *, older_than: timedelta) -> int:
        """Delete dead-lettered messages older than `older_than`; return how many."""
        from django.utils import timezone

        from .models import BrokerMessage

        cutoff = timezone.now() - older_than
        deleted, _ = self.messages.filter(state=BrokerMessage.State.DEAD, dead_at__lt=cutoff).delete()
        return deleted

    # -- used by the consumers -------------------------------------------------

    def _track(self, queue_name: str, row_ids) -> None:
        with self._lock:
            self._in_flight[queue_name].update(row_ids)

    def _untrack(self, queue_name: str, row_ids) -> None:
        with self._lock:
            self._in_flight[queue_name].difference_update(row_ids)
            self._signal(queue_name)

    def _tracked(self, queue_name: str) -> list[int]:
        with self._lock:
            return list(self._in_flight[queue_name])

    def _room(self, queue_name: str, prefetch: int) -> int:
        with self._lock:
            return prefetch - len(self._in_flight[queue_name])

    def _ack_later(self, queue_name: str, row_id: int) -> None:
        with self._lock:
            self._in_flight[queue_name].discard(row_id)
            self._acked[queue_name].append(row_id)
            self._signal(queue_name)

    def _take_acked(self, queue_name: str) -> list[int]:
        with self._lock:
            acked, self._acked[queue_name] = self._acked[queue_name], []
            return acked

    def _give_back_acked(self, queue_name: str, row_ids: list[int]) -> None:
        with self._lock:
            self._acked[queue_name][:0] = row_ids

    def _signal(self, queue_name: str) -> None:
        # Called with the lock held.
        self._signalled[queue_name] = True
        self._wakeups[queue_name].notify_all()

    def _wake(self, queue_name: str) -> None:
        with self._lock:
            if queue_name in self._wakeups:
                self._signal(queue_name)

    def _wait(self, queue_name: str, seconds: float) -> None:
        """Sleep up to `seconds`, or until an ack or a notification concerns the queue.

        A signal that came since the last wait ends this one at once, so none is lost.
        """
        with self._lock:
            if not self._signalled.get(queue_name):
                self._wakeups[queue_name].wait(seconds)
            self._signalled[queue_name] = False

    def _start_listener(self) -> None:
        with self._lock:
            if self._listener is None or not self._listener.is_alive():
                self._listener = _Listener(self)
                self._listener.start()


class _Listener(threading.Thread):
    """LISTENs on its own PostgreSQL connection and wakes the consumers of each notified queue."""

    def __init__(self, broker: DatabaseBroker):
        super().__init__(name="jobsite-broker-listener", daemon=True)
        self.broker = broker
        self.stopping = threading.Event()

    def stop(self) -> None:
        self.stopping.set()

    def run(self) -> None:
        import psycopg

        while not self.stopping.is_set():
            try:
                params = self.broker._connection().get_connection_params()
                params.pop("cursor_factory", None)
                params.pop("context", None)
                params.pop("prepare_threshold", None)
                with psycopg.connect(**params, autocommit=True) as conn:
                    conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    while not self.stopping.is_set():
                        for notify in conn.notifies(timeout=LISTEN_TIMEOUT_SECONDS, stop_after=64):
                            self.broker._wake(notify.payload)
            except Exception:
                if self.stopping.is_set():
                    return
                logger.warning("Broker notification listener lost its connection; reconnecting.", exc_info=True)
                self.stopping.wait(1.0)


class _DatabaseMessageProxy(MessageProxy):
    def __init__(self, message: Message, row_id: int) -> None:
        super().__init__(message)
        self.row_id = row_id


# A consumer's fetch on PostgreSQL: lease up to n ready rows of a queue, higher priority first.
_LEASE = """
    UPDATE broker_message SET state = 'leased', consumer_id = %s, lease_expires_at = %s, deliveries = deliveries + 1
     WHERE id IN (SELECT id FROM broker_message
                   WHERE queue_name = %s AND state = 'ready' AND available_at <= %s
                   ORDER BY priority DESC, available_at, id
                   LIMIT %s FOR UPDATE SKIP LOCKED)
 RETURNING id, body, priority, available_at
"""
# The same, deleting the rows of the acks collected since the last fetch (constant text: no injection).
_DELETE_ACKED_AND_LEASE = "WITH acked AS (DELETE FROM broker_message WHERE id = ANY(%s) AND consumer_id = %s)" + _LEASE  # noqa: S608


class _DatabaseConsumer(Consumer):
    def __init__(self, broker: DatabaseBroker, queue_name: str, prefetch: int, timeout: int) -> None:
        self.broker = broker
        self.queue_name = queue_name
        self.prefetch = prefetch
        self.timeout = timeout / 1000
        self.buffer: deque[_DatabaseMessageProxy] = deque()
        self.next_housekeeping = 0.0
        self.closed = False
        self.listening = broker._is_postgresql()

    # Every database call is wrapped so that a lost connection surfaces as a
    # Dramatiq connection error: the worker then retries acks and restarts the
    # consumer instead of crashing. A permanent error is raised as it is.
    def _call(self, fn, *args):
        from django.db import connections

        try:
            return fn(*args)
        except _transient_errors() as exc:
            connections[self.broker.database].close()
            raise ConnectionClosed(exc) from exc

    def ack(self, message: _DatabaseMessageProxy) -> None:
        """Settle a processed message: its row is deleted with the next batch of acks.

        Until then it stays leased (never redelivered while this process
        lives); a process that dies first has it redelivered after the lease,
        which an idempotent actor shrugs off. A closed consumer deletes at once.
        """
        self.broker._ack_later(self.queue_name, message.row_id)
        if self.closed:
            self._call(self._flush_acks)

    def nack(self, message: _DatabaseMessageProxy) -> None:
        self._call(self._dead_letter, [message.row_id])

    @contextmanager
    def _settling_acks(self):
        """The acks collected so far, for a statement that deletes their rows; given back if it fails."""
        row_ids = self.broker._take_acked(self.queue_name)
        try:
            yield row_ids
        except Exception:
            self.broker._give_back_acked(self.queue_name, row_ids)
            raise

    def _flush_acks(self) -> None:
        with self._settling_acks() as row_ids:
            if row_ids:
                self.broker.messages.filter(id__in=row_ids, consumer_id=self.broker.consumer_id).delete()

    def _dead_letter(self, row_ids: list[int]) -> None:
        from django.utils import timezone

        from .models import BrokerMessage

        mine = self.broker.messages.filter(id__in=row_ids, consumer_id=self.broker.consumer_id)
        done = mine.update(state=BrokerMessage.State.DEAD, dead_at=timezone.now(), lease_expires_at=None)
        self.broker._untrack(self.queue_name, row_ids)
        if done < len(row_ids):
            logger.warning("%d message(s) had lost their lease before they were dead-lettered.", len(row_ids) - done)

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
        self.closed = True
        unhandled = [m.row_id for m in self.buffer]
        self.buffer.clear()
        try:
            self._call(self._flush_acks)
            if unhandled:
                self._call(self._release, unhandled)
        except ConnectionClosed:
            # Stop renewing their leases: they return to the queue when the lease runs out.
            self.broker._untrack(self.queue_name, unhandled)
            logger.warning("Could not release %d prefetched messages; their lease will expire.", len(unhandled))

    def __next__(self) -> _DatabaseMessageProxy | None:
        deadline = time.monotonic() + self.timeout
        while True:
            if time.monotonic() >= self.next_housekeeping:
                self._call(self._housekeeping)
            if self.buffer:
                return self.buffer.popleft()
            # The acks collected since the last fetch are settled with the next one (on PostgreSQL in the
            # same statement), or alone when there is no room to fetch: the buffer empties at once (Dramatiq
            # takes every message it is given), so an acked row waits milliseconds for its delete.
            room = self.broker._room(self.queue_name, self.prefetch)
            if room > 0:
                fetched = self._call(self._fetch, room)
                if fetched:
                    self.buffer.extend(fetched)
                    continue
            else:
                self._call(self._flush_acks)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            # Woken early by an ack freeing room, or (PostgreSQL) by a notification of new messages;
            # the poll interval bounds the wait for delayed messages coming due.
            self.broker._wait(self.queue_name, min(self.broker.poll_interval, remaining))

    def _housekeeping(self) -> None:
        """Delete the acked rows, renew the leases of in-flight rows and return expired leases to the queue.

        The acks go first: an acked row's lease is no longer renewed, and one
        that ran out (acks kept through a database outage) must not be returned
        to the queue and delivered again.
        """
        from django.utils import timezone

        from .models import BrokerMessage

        self._flush_acks()
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
        """Settle the collected acks and lease up to `limit` rows."""
        if self.listening:
            with self._settling_acks() as acked:
                rows = self._lease_postgresql(limit, acked)
        else:
            self._flush_acks()
            rows = self._lease_generic(limit)
        if not rows:
            return []
        self.broker._track(self.queue_name, [row_id for row_id, _ in rows])
        fetched, undecodable = [], []
        for row_id, body in rows:
            try:
                fetched.append(_DatabaseMessageProxy(Message.decode(bytes(body)), row_id))
            except Exception:
                logger.exception(
                    "Message row %s of queue %r cannot be decoded; dead-lettered.", row_id, self.queue_name
                )
                undecodable.append(row_id)
        if undecodable:
            self._dead_letter(undecodable)
        return fetched

    def _lease_postgresql(self, limit: int, acked: list[int]) -> list[tuple[int, bytes]]:
        """Lease up to `limit` ready rows, deleting the acked rows in the same statement; in delivery order."""
        from django.utils import timezone

        now = timezone.now()
        params = [
            self.broker.consumer_id,
            now + timedelta(seconds=self.broker.lease_seconds),
            self.queue_name,
            now,
            limit,
        ]
        sql = _LEASE
        if acked:
            sql = _DELETE_ACKED_AND_LEASE
            params = [acked, self.broker.consumer_id, *params]
        with self.broker._connection().cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        rows.sort(key=lambda row: (-row[2], row[3], row[0]))
        return [(row_id, body) for row_id, body, _, _ in rows]

    def _lease_generic(self, limit: int) -> list[tuple[int, bytes]]:
        from django.db import transaction
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
            rows = list(ready.order_by("-priority", "available_at", "id").values_list("id", "body")[:limit])
            if rows:
                self.broker.messages.filter(id__in=[row_id for row_id, _ in rows]).update(
                    state=BrokerMessage.State.LEASED,
                    consumer_id=self.broker.consumer_id,
                    lease_expires_at=now + timedelta(seconds=self.broker.lease_seconds),
                    deliveries=F("deliveries") + 1,
                )
        return rows
