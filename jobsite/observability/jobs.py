"""What the worker's run path reports: its metrics, the log context of the job it runs, its spans.

jobs.run calls three hooks, eight counter/histogram updates in all for a
one-stage job (their cost: bench/observability_overhead.py):

- :class:`job_observed` around a claimed job's run: counts the start (and the
  pickup latency of a first run), makes every log record of the thread carry
  the job (`job_id`, `pipeline`, `worker`) and the request id of the call
  that created it, and opens the run's span when tracing is on;
- :func:`stage_observed` when a stage's run is written;
- :func:`run_observed` when the run's outcome is written.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from jobs.services import band_queue
from jobsite.api.request_id import request_id_var
from jobsite.logging import JobLogContext, job_log_context

from . import metrics, tracing

if TYPE_CHECKING:
    from jobs.run import ClaimedJob, StageRecord

# A run's outcome for each status jobs.run.job_run returns (None: the job was taken from the worker).
_OUTCOMES = {
    "completed": "completed",
    "failed": "failed",
    "retrying": "retrying",
    "cancelled": "cancelled",
    "pending": "handed_back",
    None: "lost",
}
_queue_of = cache(band_queue)  # eleven priorities


class job_logging:
    """Make the thread's log records carry this job and the request id of the call that created it.

    For any work done about a job outside the API request (a run, a webhook
    delivery): `with job_logging(job_id=..., request_id=..., pipeline=...):`.
    The previous values come back when the block ends.
    """

    __slots__ = ("context", "request_id", "tokens")

    def __init__(self, *, job_id: str, request_id: str, pipeline: str, worker: str = ""):
        self.context = JobLogContext(job_id, pipeline, worker or None)
        self.request_id = request_id or "-"

    def __enter__(self):
        self.tokens = (request_id_var.set(self.request_id), job_log_context.set(self.context))
        return self

    def __exit__(self, *exc_info):
        job_log_context.reset(self.tokens[1])
        request_id_var.reset(self.tokens[0])


class job_observed(job_logging):
    """Count the run's start, and give the block the job's log context (and span, when tracing)."""

    __slots__ = ("job", "span")

    def __init__(self, job: ClaimedJob):
        self.context = JobLogContext(str(job.id), job.pipeline, job.worker)
        self.request_id = job.request_id or "-"
        self.job = job
        self.span = None

    def __enter__(self):
        job = self.job
        queue = _queue_of(job.priority)
        pickup = (job.started_at - job.ready_at).total_seconds() if job.attempts == 1 and job.ready_at else None
        metrics.job_started(pipeline=job.pipeline, queue=queue, pickup_seconds=pickup)
        self.tokens = (request_id_var.set(self.request_id), job_log_context.set(self.context))
        if tracing.enabled():
            self.span = tracing.job_span(job, queue=queue)
            self.span.__enter__()
        return self

    def __exit__(self, *exc_info):
        try:
            if self.span is not None:
                self.span.__exit__(*exc_info)
        finally:
            job_log_context.reset(self.tokens[1])
            request_id_var.reset(self.tokens[0])


def stage_observed(job: ClaimedJob, record: StageRecord) -> None:
    """Record a finished stage run: its duration by pipeline, stage type and outcome, and its span."""
    metrics.stage_finished(
        pipeline=job.pipeline, stage_type=record.stage_type, outcome=record.status, seconds=record.duration_ms / 1000
    )
    if tracing.enabled():
        tracing.stage_span(job, record)


def run_observed(job: ClaimedJob, status: str | None, duration_ms: int) -> None:
    """Record how a run ended (`status` as job_run returns it) and how long it took."""
    outcome = _OUTCOMES.get(status, "lost")
    metrics.job_finished(pipeline=job.pipeline, outcome=outcome, seconds=duration_ms / 1000)
    if tracing.enabled():
        tracing.job_outcome(outcome)
