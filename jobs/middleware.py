"""Dramatiq middleware for jobsite workers: heartbeats and graceful hand-back.

Models are imported lazily: the broker and its middleware are built while
Django's app registry is still loading.
"""

import logging
import threading

from django.conf import settings
from dramatiq.middleware import Middleware

logger = logging.getLogger(__name__)


class JobHeartbeat(Middleware):
    """Keep `heartbeat_at` fresh for the jobs this worker process holds, and record the process as alive.

    A thread beats every `WORKER_HEARTBEAT_SECONDS`; recovery treats jobs whose
    worker stopped beating as abandoned.
    """

    def __init__(self, interval: float | None = None):
        self.interval = interval
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None

    def after_worker_boot(self, broker, worker):
        self.queues = sorted(q for q in broker.get_declared_queues() if not q.endswith(".DQ"))
        self.stopping.clear()
        self.thread = threading.Thread(target=self._run, name="jobsite-heartbeat", daemon=True)
        self.thread.start()

    def before_worker_shutdown(self, broker, worker):
        self.stopping.set()
        from django.db import connection

        from jobs.services import worker_stopped

        try:
            worker_stopped()
        except Exception:
            logger.exception("Could not record the worker's shutdown")
        finally:
            connection.close()

    def _run(self):
        from django.db import connection

        from jobs.services import worker_beat

        interval = self.interval or settings.WORKER_HEARTBEAT_SECONDS
        while True:
            try:
                worker_beat(queues=self.queues)
            except Exception:
                logger.exception("Worker heartbeat failed")
                connection.close()
            if self.stopping.wait(interval):
                break
        connection.close()
