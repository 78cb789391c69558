"""Dramatiq middleware for jobsite workers: database connections, heartbeats and graceful hand-back.

Models are imported lazily: the broker and its middleware are built while
Django's app registry is still loading.
"""

import logging
import threading
import time

from django.conf import settings
from dramatiq.middleware import Middleware

logger = logging.getLogger(__name__)


class IdlePoll(Middleware):
    """Set how long an idle worker waits before looking for work again (WORKER_IDLE_POLL_MS).

    Dramatiq's default (1 s) bounds how late an idle worker notices a new job
    on brokers that cannot wake it (Redis, RabbitMQ); the database broker on
    PostgreSQL is woken at once by its notifications either way.
    """

    def before_worker_boot(self, broker, worker):
        worker.worker_timeout = settings.WORKER_IDLE_POLL_MS


class IsolatedStages(Middleware):
    """Start the fork server of isolated stages when the worker boots if its pipelines need it.

    The pipelines are read before the worker's threads start, on a connection
    closed at once, so that the read never adds to the connections a running
    worker holds; the server then starts in a thread of its own.
    See pipelines.isolation.prestart_wanted (ISOLATED_STAGES_PRESTART).
    """

    def __init__(self):
        self.wanted = False

    def before_worker_boot(self, broker, worker):
        from django.db import connection

        from pipelines.isolation import prestart_wanted

        try:
            self.wanted = prestart_wanted()
        except Exception:
            logger.exception("Could not read the pipelines; the first isolated stage will start the fork server.")
        finally:
            connection.close()

    def after_worker_boot(self, broker, worker):
        from pipelines.isolation import warm_up

        if self.wanted:
            threading.Thread(target=warm_up, name="jobsite-forkserver-warm-up", daemon=True).start()


class DbConnections(Middleware):
    """Keep each worker thread's database connection open across messages, and check it only when it matters.

    A worker serves no requests, so Django never recycles its connections by
    itself. Checking a connection before and after every message (as
    django-dramatiq's middleware does, with CONN_HEALTH_CHECKS a round trip
    each time) costs more than the job; instead a thread's connection is
    checked (and recycled past CONN_MAX_AGE) when the thread was idle longer
    than WORKER_CONN_CHECK_IDLE_SECONDS, and after a database error. Each
    thread holds one connection: the budget is the threads plus two per
    process (the heartbeat and the broker's consumer).
    """

    def __init__(self):
        self.local = threading.local()

    def before_process_message(self, broker, message):
        from django.db import connection

        now = time.monotonic()
        idle = now - getattr(self.local, "last_used", now)
        if idle > settings.WORKER_CONN_CHECK_IDLE_SECONDS:
            connection.close_if_unusable_or_obsolete()
        self.local.last_used = now

    def after_process_message(self, broker, message, *, result=None, exception=None):
        from django.db import connection

        if connection.errors_occurred:
            connection.close_if_unusable_or_obsolete()

    after_skip_message = after_process_message

    def _close(self, *args, **kwargs):
        from django.db import connections

        connections.close_all()

    before_consumer_thread_shutdown = _close
    before_worker_thread_shutdown = _close


class JobHeartbeat(Middleware):
    """Keep `heartbeat_at` fresh for the jobs this worker process holds, and record the process as alive.

    A thread beats every `WORKER_HEARTBEAT_SECONDS`; recovery treats jobs whose
    worker stopped beating as abandoned.
    """

    def __init__(self, interval: float | None = None):
        self.interval = interval
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None

    def before_worker_boot(self, broker, worker):
        # Registered before the first message is taken: recovery can always tell this
        # process's jobs from those of a process it never heard of.
        from django.db import connection

        from jobs.workers import worker_beat

        try:
            worker_beat(queues=self._queues(broker, worker), threads=getattr(worker, "worker_threads", 0))
        except Exception:
            logger.exception("Could not register the worker")
        finally:
            connection.close()

    def _queues(self, broker, worker) -> list[str]:
        """The queues this worker takes messages from: all declared, or those it was limited to (`--queues`)."""
        only = getattr(worker, "consumer_whitelist", None)
        return sorted(q for q in broker.get_declared_queues() if not q.endswith(".DQ") and (not only or q in only))

    def after_worker_boot(self, broker, worker):
        self.queues = self._queues(broker, worker)
        self.threads = getattr(worker, "worker_threads", 0)
        self.stopping.clear()
        self.thread = threading.Thread(target=self._run, name="jobsite-heartbeat", daemon=True)
        self.thread.start()

    def after_worker_shutdown(self, broker, worker):
        # After the worker threads finished or handed their jobs back: until
        # then the jobs are still held and must keep their heartbeat.
        self.stopping.set()
        from django.db import connection

        from jobs.workers import worker_stopped

        try:
            worker_stopped()
        except Exception:
            logger.exception("Could not record the worker's shutdown")
        finally:
            connection.close()

    def _run(self):
        from django.db import connection
        from django.utils import timezone

        from audit.context import AuditContext, audit_context
        from jobs.recovery import jobs_reclaim_dropped
        from jobs.workers import process_id, running_job_ids, worker_beat

        interval = self.interval or settings.WORKER_HEARTBEAT_SECONDS
        while True:
            try:
                worker_beat(queues=self.queues, threads=self.threads)
                with audit_context(AuditContext(source="system", name="heartbeat")):
                    claimed_before = timezone.now()  # before the list of running jobs is read
                    jobs_reclaim_dropped(process=process_id(), running=running_job_ids(), claimed_before=claimed_before)
            except Exception:
                logger.exception("Worker heartbeat failed")
                connection.close()
            if self.stopping.wait(interval):
                break
        connection.close()


class GracefulShutdown(Middleware):
    """On shutdown, let running stages finish for `JOB_SHUTDOWN_GRACE_SECONDS`, then hand their jobs back.

    Dramatiq stops taking messages and waits for its threads; a stage still
    running when the grace period ends is interrupted, its job returns to the
    queue (see jobs.run.job_hand_back) and another worker resumes it.
    """

    def __init__(self, grace_seconds: float | None = None):
        self.grace_seconds = grace_seconds

    def before_worker_shutdown(self, broker, worker):
        from pipelines.deadline import InterruptibleStage

        grace = settings.JOB_SHUTDOWN_GRACE_SECONDS if self.grace_seconds is None else self.grace_seconds

        def hand_back():
            count = InterruptibleStage.hand_back_all()
            if count:
                logger.warning("Grace period over: handing %d running job(s) back to the queue.", count)

        timer = threading.Timer(grace, hand_back)
        timer.daemon = True
        timer.start()
