"""Every Prometheus metric jobsite records, and one function per event that records it.

Call sites say what happened (`job_started(...)`); this module owns the
metric, its labels and its buckets. Labels are bounded: pipeline names (slugs
of the pipelines that exist), stage types (registered in code), queues,
outcomes, route templates, methods and status codes; never a job id, a user
id or a raw path.

Each process records into its own files in `PROMETHEUS_MULTIPROC_DIR` when it
is set, and `/metrics` on any web process adds up the files of every process
(gunicorn workers, Dramatiq worker processes, the scheduler): see
:mod:`jobsite.observability.views`. The files are named after the host and the
pid, so processes of several containers sharing the directory (each with its
own pid 1, 7, 8 ...) never write to the same file. Without the directory a
process counts in memory, and `/metrics` shows the serving process's own
counts (development, in-process tests).

The gauges (queue depths, workers, outbox backlog) are not recorded here:
they are read at scrape time (:mod:`jobsite.observability.collectors`).
"""

from __future__ import annotations

import os
import re
import socket
from collections import Counter as Tally
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from prometheus_client import Counter, Histogram, values

MULTIPROCESS_DIR = settings.PROMETHEUS_MULTIPROC_DIR
_HOST = re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname())[:64] or "host"


_identifier = [f"{_HOST}-{os.getpid()}"]


def _process_identifier() -> str:
    """Names this process's metric files: `<host>-<pid>`, distinct across containers sharing the directory.

    prometheus-client asks on every update (to notice a fork): the name is
    kept, and renewed in a forked child.
    """
    return _identifier[0]


os.register_at_fork(after_in_child=lambda: _identifier.__setitem__(0, f"{_HOST}-{os.getpid()}"))

if MULTIPROCESS_DIR:
    os.makedirs(MULTIPROCESS_DIR, exist_ok=True)
    # prometheus-client picks the multiprocess value class from the environment
    # when imported; this replaces it with one whose files carry the host name.
    values.ValueClass = values.MultiProcessValue(process_identifier=_process_identifier)

# Seconds: from a few milliseconds (an echo stage) to an hour (JOB_TIME_LIMIT_SECONDS).
_RUN_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
_HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_WEBHOOK_ATTEMPT_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_WEBHOOK_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)

# -- jobs --------------------------------------------------------------------------------

JOBS_SUBMITTED = Counter("jobsite_jobs_submitted", "Jobs created by submissions (repeats excluded).", ["pipeline"])
JOBS_STARTED = Counter("jobsite_jobs_started", "Runs started: claims of a job by a worker.", ["pipeline"])
JOBS_COMPLETED = Counter("jobsite_jobs_completed", "Jobs completed.", ["pipeline"])
JOBS_FAILED = Counter("jobsite_jobs_failed", "Jobs failed for good (no retry left).", ["pipeline"])
JOBS_CANCELLED = Counter("jobsite_jobs_cancelled", "Jobs cancelled, waiting or running.", ["pipeline"])
JOBS_RETRIED = Counter(
    "jobsite_jobs_retried", "Failed stages scheduled to run again after their backoff.", ["pipeline"]
)
JOBS_HANDED_BACK = Counter(
    "jobsite_jobs_handed_back", "Running jobs handed back to the queue by a worker shutting down.", ["pipeline"]
)
JOB_DURATION = Histogram(
    "jobsite_job_duration_seconds",
    "Time of one run of a job on a worker, from its claim to its outcome.",
    ["pipeline", "outcome"],
    buckets=_RUN_BUCKETS,
)
STAGE_DURATION = Histogram(
    "jobsite_stage_duration_seconds",
    "Time of one run of one stage.",
    ["pipeline", "stage_type", "outcome"],
    buckets=_RUN_BUCKETS,
)
JOB_PICKUP = Histogram(
    "jobsite_job_pickup_seconds",
    "Time from a job's creation (or its run_at, when later) to its first start.",
    ["pipeline", "queue"],
    buckets=_RUN_BUCKETS,
)
BROKER_SEND_FAILURES = Counter(
    "jobsite_broker_send_failures", "Job messages the broker did not take (the jobs wait in the outbox).", ["queue"]
)

# Each outcome of a run (jobs.run.job_run's status) and the counter it moves.
_OUTCOME_COUNTERS = {
    "completed": JOBS_COMPLETED,
    "failed": JOBS_FAILED,
    "cancelled": JOBS_CANCELLED,
    "retrying": JOBS_RETRIED,
    "handed_back": JOBS_HANDED_BACK,
}

# -- HTTP --------------------------------------------------------------------------------

HTTP_REQUESTS = Counter(
    "jobsite_http_requests", "HTTP requests answered, by route template.", ["route", "method", "status"]
)
HTTP_DURATION = Histogram(
    "jobsite_http_request_duration_seconds",
    "Time to answer an HTTP request, by route template.",
    ["route", "method"],
    buckets=_HTTP_BUCKETS,
)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

# -- webhooks and audit ------------------------------------------------------------------

WEBHOOK_ATTEMPTS = Counter("jobsite_webhook_attempts", "Webhook delivery attempts, by outcome.", ["outcome"])
WEBHOOK_ATTEMPT_DURATION = Histogram(
    "jobsite_webhook_attempt_duration_seconds",
    "Time of one webhook delivery attempt (the HTTP call).",
    ["outcome"],
    buckets=_WEBHOOK_ATTEMPT_BUCKETS,
)
WEBHOOK_DELIVERY_LATENCY = Histogram(
    "jobsite_webhook_delivery_latency_seconds",
    "Time from a job's change (its event) to the receiver's 2xx.",
    buckets=_WEBHOOK_LATENCY_BUCKETS,
)
AUDIT_WRITE_FAILURES = Counter(
    "jobsite_audit_write_failures", "Audit rows of finished requests that could not be written."
)
_OUTCOME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


# -- recording ---------------------------------------------------------------------------


class _PipelineMetrics:
    """One pipeline's labelled job metrics, looked up once: `labels()` costs as much as the update itself.

    The outcome counters start at zero as soon as the pipeline runs, so a
    rate over them exists before the first failure.
    """

    __slots__ = ("durations", "name", "outcomes", "pickups", "stages", "started")

    def __init__(self, name: str):
        self.name = name
        self.started = JOBS_STARTED.labels(name)
        self.outcomes = {outcome: counter.labels(name) for outcome, counter in _OUTCOME_COUNTERS.items()}
        self.durations: dict[str, Any] = {}
        self.pickups: dict[str, Any] = {}
        self.stages: dict[tuple[str, str], Any] = {}

    def duration(self, outcome: str):
        child = self.durations.get(outcome)
        if child is None:
            child = self.durations[outcome] = JOB_DURATION.labels(self.name, outcome)
        return child

    def pickup(self, queue: str):
        child = self.pickups.get(queue)
        if child is None:
            child = self.pickups[queue] = JOB_PICKUP.labels(self.name, queue)
        return child

    def stage(self, stage_type: str, outcome: str):
        child = self.stages.get((stage_type, outcome))
        if child is None:
            child = self.stages[(stage_type, outcome)] = STAGE_DURATION.labels(self.name, stage_type, outcome)
        return child


_pipelines: dict[str, _PipelineMetrics] = {}


def _pipeline(name: str) -> _PipelineMetrics:
    # Two threads may build one at once; labels() hands both the same children.
    found = _pipelines.get(name)
    if found is None:
        found = _pipelines[name] = _PipelineMetrics(name)
    return found


def jobs_submitted(pipelines: Iterable[str]) -> None:
    """Count created jobs, given the pipeline name of each."""
    for pipeline, count in Tally(pipelines).items():
        JOBS_SUBMITTED.labels(pipeline).inc(count)


def job_started(*, pipeline: str, queue: str, pickup_seconds: float | None) -> None:
    """Count a claim; `pickup_seconds` is the wait of a first run (None for later runs)."""
    metrics = _pipeline(pipeline)
    metrics.started.inc()
    if pickup_seconds is not None:
        metrics.pickup(queue).observe(max(pickup_seconds, 0.0))


def job_finished(*, pipeline: str, outcome: str, seconds: float) -> None:
    """Record how a run ended: `completed`, `failed`, `retrying`, `cancelled`, `handed_back` or `lost`."""
    metrics = _pipeline(pipeline)
    counter = metrics.outcomes.get(outcome)
    if counter is not None:
        counter.inc()
    metrics.duration(outcome).observe(seconds)


def job_cancelled(*, pipeline: str) -> None:
    """Count a job cancelled while it waited (a running one is counted by :func:`job_finished`)."""
    _pipeline(pipeline).outcomes["cancelled"].inc()


def stage_finished(*, pipeline: str, stage_type: str, outcome: str, seconds: float) -> None:
    _pipeline(pipeline).stage(stage_type, outcome).observe(seconds)


def broker_send_failed(*, queue: str) -> None:
    BROKER_SEND_FAILURES.labels(queue).inc()


def http_request(*, route: str, method: str, status: int, seconds: float) -> None:
    method = method if method in _METHODS else "other"
    HTTP_REQUESTS.labels(route, method, str(status)).inc()
    HTTP_DURATION.labels(route, method).observe(seconds)


def webhook_attempt_recorded(*, outcome: str, duration_seconds: float) -> None:
    """Count one delivery attempt by outcome (succeeded, http_error, timeout, connection_error, refused, ...)."""
    outcome = outcome if _OUTCOME.match(outcome) else "other"
    WEBHOOK_ATTEMPTS.labels(outcome).inc()
    WEBHOOK_ATTEMPT_DURATION.labels(outcome).observe(duration_seconds)


def webhook_delivery_succeeded(*, latency_seconds: float) -> None:
    """Record the time from the job's change (the event) to the receiver's 2xx."""
    WEBHOOK_DELIVERY_LATENCY.observe(max(latency_seconds, 0.0))


def audit_write_failed() -> None:
    AUDIT_WRITE_FAILURES.inc()
