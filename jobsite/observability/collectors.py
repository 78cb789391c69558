"""Gauges read at scrape time from the broker and the database, so they are right whoever scrapes.

One scrape costs the broker's depth query (one GROUP BY on the database
broker, one pipelined round trip on Redis, a passive declare per queue on
RabbitMQ) and three small indexed queries (live workers, the outbox's two
counts). A source that does not answer is reported as down (`jobsite_broker_up
0`, `jobsite_database_up 0`) rather than failing the whole scrape.
"""

from __future__ import annotations

import logging

from django.db import DatabaseError
from prometheus_client.core import GaugeMetricFamily

logger = logging.getLogger(__name__)


def declared_queues() -> list[str]:
    """The queues this deployment's actors use (canonical names, no delay or dead-letter queues)."""
    import dramatiq
    from dramatiq.common import q_name

    return sorted({name for name in dramatiq.get_broker().get_declared_queues() if q_name(name) == name})


# Each count of jobsite.broker.depth and the gauge that shows it.
_DEPTH_GAUGES = (
    ("ready", "jobsite_queue_depth", "Messages waiting in the queue, deliverable now."),
    ("delayed", "jobsite_queue_delayed", "Messages waiting for their time (scheduled jobs, retry backoffs)."),
    ("in_flight", "jobsite_queue_in_flight", "Messages fetched by a worker and not yet settled."),
    ("dead", "jobsite_queue_dead", "Dead-lettered messages."),
)


class ScrapeTimeCollector:
    """Queue depths by state, live workers per queue, and the outbox backlog."""

    def describe(self):
        # Registering must not query anything; the names are only needed for the registry's bookkeeping.
        return []

    def collect(self):
        yield from self._queues()
        yield from self._database()

    def _queues(self):
        from dramatiq.errors import BrokerConnectionError

        from jobsite.broker.depth import broker_queue_depths

        up = GaugeMetricFamily("jobsite_broker_up", "1 when the broker answered this scrape, 0 when it did not.")
        try:
            depths = broker_queue_depths()
        except (BrokerConnectionError, DatabaseError) as exc:
            logger.warning("Metrics: the broker did not answer: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        for state, name, documentation in _DEPTH_GAUGES:
            gauge = GaugeMetricFamily(name, documentation, labels=["queue"])
            for queue, counts in depths.items():
                if counts.get(state) is not None:
                    gauge.add_metric([queue], counts[state])
            yield gauge

    def _database(self):
        from jobs import selectors

        up = GaugeMetricFamily("jobsite_database_up", "1 when the database answered this scrape, 0 when it did not.")
        try:
            workers = list(selectors.live_workers().only("queues"))
            backlog = selectors.outbox_backlog()
        except DatabaseError as exc:
            logger.warning("Metrics: the database did not answer: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up

        alive = GaugeMetricFamily("jobsite_workers_alive", "Worker processes that beat recently and have not stopped.")
        alive.add_metric([], len(workers))
        yield alive
        consumers = GaugeMetricFamily(
            "jobsite_queue_workers", "Live worker processes consuming each queue.", labels=["queue"]
        )
        counts = dict.fromkeys(declared_queues(), 0)
        for worker in workers:
            for queue in worker.queues or ():
                counts[queue] = counts.get(queue, 0) + 1
        for queue, count in sorted(counts.items()):
            consumers.add_metric([queue], count)
        yield consumers

        pending = GaugeMetricFamily(
            "jobsite_outbox_pending_jobs",
            "Jobs still pending past JOB_OUTBOX_RESEND_SECONDS: the broker did not take them (recovery re-sends).",
        )
        pending.add_metric([], backlog["pending_jobs"])
        yield pending
        events = GaugeMetricFamily(
            "jobsite_outbox_undispatched_events",
            "Job events someone listens to, not handed to the webhooks dispatcher within their grace.",
        )
        events.add_metric([], backlog["undispatched_events"])
        yield events
