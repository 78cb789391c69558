"""What the worker's run path reports: its metrics, the log context of the job it runs, its spans.

jobs.run calls three hooks, each a few counter/histogram updates:

- :func:`job_observed` around a claimed job's run: counts the start (and the
  pickup latency of a first run), makes every log record of the thread carry
  the job (`job_id`, `pipeline`, `worker`) and the request id of the call
  that created it, and opens the run's span when tracing is on;
- :func:`stage_observed` when a stage's run is written;
- :func:`run_observed` when the run's outcome is written.
"""

from __future__ import annotations

from contextlib import contextmanager
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


@contextmanager
def job_logging(*, job_id: str, request_id: str, pipeline: str, worker: str = ""):
    """Make the thread's log records carry this job and the request id of the call that created it.

    For any work done about a job outside the API request (a run, a webhook
    delivery); the previous values come back when the block ends.
    """
    request_token = request_id_var.set(request_id or "-")
    job_token = job_log_context.set(JobLogContext(job_id=job_id, pipeline=pipeline, worker=worker or None))
    try:
        yield
    finally:
        job_log_context.reset(job_token)
        request_id_var.reset(request_token)


@contextmanager
def job_observed(job: ClaimedJob):
    """Count the run's start, and give the block the job's log context and span."""
    queue = band_queue(job.priority)
    pickup = (job.started_at - job.ready_at).total_seconds() if job.attempts == 1 and job.ready_at else None
    metrics.job_started(pipeline=job.pipeline, queue=queue, pickup_seconds=pickup)
    with (
        job_logging(job_id=str(job.id), request_id=job.request_id, pipeline=job.pipeline, worker=job.worker),
        tracing.job_span(job, queue=queue),
    ):
        yield


def stage_observed(job: ClaimedJob, record: StageRecord) -> None:
    """Record a finished stage run: its duration by pipeline, stage type and outcome, and its span."""
    metrics.stage_finished(
        pipeline=job.pipeline, stage_type=record.stage_type, outcome=record.status, seconds=record.duration_ms / 1000
    )
    tracing.stage_span(job, record)


def run_observed(job: ClaimedJob, status: str | None, duration_ms: int) -> None:
    """Record how a run ended (`status` as job_run returns it) and how long it took."""
    outcome = _OUTCOMES.get(status, "lost")
    metrics.job_finished(pipeline=job.pipeline, outcome=outcome, seconds=duration_ms / 1000)
    tracing.job_outcome(outcome)
