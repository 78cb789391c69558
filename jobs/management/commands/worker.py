"""`manage.py worker`: a Dramatiq worker in this one process, with no supervisor process.

`manage.py rundramatiq` (django-dramatiq) runs Dramatiq's command line, whose
main process only starts the worker processes, forwards signals and copies
their logs: one more Python process (about 25 MB) per worker. This command runs
the worker itself, which suits a container or a systemd unit (they restart a
worker that dies and scale by running more of them): SIGTERM or SIGINT stops
taking messages, lets running stages finish (JOB_SHUTDOWN_GRACE_SECONDS, then
they are handed back) and exits 0; a second signal exits at once. SIGHUP (a
closed terminal) stops it as SIGTERM does.

It runs no system checks, as Dramatiq's worker processes never did: the URL
check would import the URLconf, and with it the API's serializers, the OpenAPI
machinery and requests, about 20 MB that a worker never uses.
"""

from __future__ import annotations

import logging
import os
import signal
import threading

import dramatiq
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils.module_loading import autodiscover_modules
from dramatiq.errors import BrokerConnectionError

logger = logging.getLogger("jobs.worker")


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class Command(BaseCommand):
    help = "Run a Dramatiq worker (THREADS threads) in this process until SIGTERM or SIGINT."
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("--threads", "-t", type=int, default=8, help="worker threads (default 8)")
        parser.add_argument(
            "--queues", "-Q", nargs="+", metavar="QUEUE", help="take messages from these queues only (default: all)"
        )
        parser.add_argument(
            "--shutdown-timeout",
            type=float,
            default=600,
            help="seconds to wait for the threads at shutdown before exiting anyway (default 600)",
        )

    def handle(self, *args, threads: int, queues: list[str] | None, shutdown_timeout: float, **options):
        if threads < 1:
            raise CommandError("--threads must be at least 1.")
        stopping = threading.Event()

        def stop(signum, frame):
            if stopping.is_set():
                logger.warning("Second signal: exiting without waiting for the running jobs.")
                os._exit(1)
            logger.info("Stopping: no new messages; waiting for the running jobs.")
            stopping.set()

        # Before anything else, so that a signal during start-up stops the worker too.
        for signum in STOP_SIGNALS:
            signal.signal(signum, stop)
        broker = dramatiq.get_broker()
        broker.emit_after("process_boot")
        # The actors' modules, as `rundramatiq` finds them (DRAMATIQ_AUTODISCOVER_MODULES of every app).
        autodiscover_modules(*settings.DRAMATIQ_AUTODISCOVER_MODULES)
        if queues:
            unknown = sorted(set(queues) - broker.get_declared_queues())
            if unknown:
                raise CommandError(f"No actor uses the queue(s) {', '.join(unknown)}.")
        if stopping.is_set():
            return
        worker = dramatiq.Worker(broker, queues=set(queues) if queues else None, worker_threads=threads)
        try:
            worker.start()
        except BrokerConnectionError as exc:
            raise CommandError(f"Could not connect to the broker: {exc}") from exc
        logger.info(
            "Worker ready: pid %d, %d threads, queues %s.",
            os.getpid(),
            threads,
            ", ".join(sorted(worker.consumers)) or "none",
        )
        while not stopping.wait(1):
            pass
        worker.stop(timeout=int(shutdown_timeout * 1000))
        broker.close()
        logger.info("Worker stopped.")
