"""Runs a job's stages in order, recording each stage run."""

from __future__ import annotations

import json
import logging
import time
import traceback
from typing import Any

from django.utils import timezone

from jobs.models import Job, JobStatus, StageRun, StageRunStatus

from .deadline import InterruptibleStage, JobHandBack, StageDeadline, StageTimeout
from .registry import StageContext, get_stage_type
from .stages import StageCancelled

logger = logging.getLogger(__name__)


class StageFailed(Exception):
    """A stage raised; `retryable` when the stage has retries left and the error may pass.

    An exception class with `retryable = False` (an unsafe URL, a missing path,
    output that is not JSON) fails the job at once: retrying cannot help.
    """

    def __init__(self, stage_name: str, error: BaseException, *, attempt: int, retries: int):
        super().__init__(f"Stage {stage_name!r} failed (attempt {attempt} of {retries + 1}): {_describe(error)}")
        self.stage_name = stage_name
        self.error = error
        self.attempt = attempt
        self.retryable = attempt <= retries and getattr(error, "retryable", True)


class StageOutputError(TypeError):
    """The stage returned something JSON cannot encode."""

    retryable = False


class JobCancelled(Exception):
    """The job was asked to stop (`cancelling`) and its worker stopped it."""


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def _elapsed_ms(start, end) -> int:
    return max(0, round((end - start).total_seconds() * 1000))


def _runs_since_checkpoint(job: Job):
    runs = job.stage_runs.all()
    return runs.filter(started_at__gte=job.checkpoints_since) if job.checkpoints_since else runs


def _checkpoints(job: Job) -> dict[int, Any]:
    """Outputs of the leading stages already completed for this job, by index."""
    done = dict(_runs_since_checkpoint(job).filter(status=StageRunStatus.COMPLETED).values_list("index", "output"))
    leading = {}
    for index in range(len(job.pipeline_config.get("stages", []))):
        if index not in done:
            break
        leading[index] = done[index]
    return leading


def execute_stages(job: Job) -> Any:
    """Run the stages of the job's config snapshot; return the last stage's output.

    Each stage gets the previous stage's output (the job's input for the first)
    and the outputs of all earlier stages by name. Stages already completed for
    this job (by an earlier attempt) are not run again: their saved outputs are
    used, so a retried job resumes at the stage that failed. Before each stage,
    and whenever a stage asks `is_cancelled()`, a `cancelling` job stops with
    :class:`JobCancelled`. A stage's `timeout_s` is enforced. A stage that
    raises is recorded as failed and :class:`StageFailed` says whether it has
    retries left.
    """
    stages = job.pipeline_config.get("stages", [])
    progress = _Progress(job, len(stages))
    cancellation = _CancellationCheck(job)
    checkpoints = _checkpoints(job)
    outputs: dict[str, Any] = {}
    previous: Any = job.input_data
    for index, spec in enumerate(stages):
        if index in checkpoints:
            outputs[spec["name"]] = previous = checkpoints[index]
            continue
        if cancellation(force=True):
            raise JobCancelled()
        earlier = job.stage_runs.filter(index=index)
        failures = _runs_since_checkpoint(job).filter(index=index, status=StageRunStatus.FAILED).count()
        run = StageRun.objects.create(
            job=job,
            index=index,
            name=spec["name"],
            stage_type=spec["type"],
            attempt=earlier.count() + 1,
            started_at=timezone.now(),
        )
        context = StageContext(
            job_id=str(job.id),
            input=job.input_data,
            previous=previous,
            outputs=dict(outputs),
            params=spec.get("params") or {},
            report_progress=progress.stage_reporter(index),
            is_cancelled=cancellation,
        )
        try:
            with InterruptibleStage(), StageDeadline(spec.get("timeout_s")):
                output = get_stage_type(spec["type"]).func(context)
            try:
                json.dumps(output)
            except (TypeError, ValueError) as exc:
                raise StageOutputError(f"its output is not JSON: {exc}") from exc
        except StageCancelled:
            run.status = StageRunStatus.CANCELLED
            _finish(run)
            raise JobCancelled() from None
        except JobHandBack:
            _fail(run, JobHandBack("interrupted: the worker is shutting down"), "")
            raise
        except StageTimeout:
            error = StageTimeout(f"exceeded its timeout of {spec['timeout_s']} s")
            _fail(run, error, traceback.format_exc())
            raise StageFailed(spec["name"], error, attempt=failures + 1, retries=spec.get("retries", 0)) from None
        except Exception as exc:
            _fail(run, exc, traceback.format_exc())
            raise StageFailed(spec["name"], exc, attempt=failures + 1, retries=spec.get("retries", 0)) from exc
        run.status = StageRunStatus.COMPLETED
        run.output = output
        _finish(run)
        outputs[spec["name"]] = previous = output
        if index + 1 < len(stages):
            progress.save(index + 1, 0.0, force=True)
    return previous


def _fail(run: StageRun, error: BaseException, trace: str) -> None:
    run.status = StageRunStatus.FAILED
    run.error = _describe(error)
    run.traceback = trace
    _finish(run)


def _finish(run: StageRun) -> None:
    run.finished_at = timezone.now()
    run.duration_ms = _elapsed_ms(run.started_at, run.finished_at)
    run.save(update_fields=["status", "output", "error", "traceback", "finished_at", "duration_ms"])


class _CancellationCheck:
    """Tells whether the job was asked to stop; a stage may ask often, the database is asked at most every 0.5 s."""

    MIN_INTERVAL = 0.5

    def __init__(self, job: Job):
        self.job = job
        self.last_check = 0.0
        self.cancelled = False

    def __call__(self, *, force: bool = False) -> bool:
        now = time.monotonic()
        if not self.cancelled and (force or now - self.last_check >= self.MIN_INTERVAL):
            self.last_check = now
            self.cancelled = Job.objects.filter(pk=self.job.pk, status=JobStatus.CANCELLING).exists()
        return self.cancelled


class _Progress:
    """Writes a job's progress: stages done out of total, plus the running stage's own fraction.

    A stage may report often; its reports are written at most twice a second.
    """

    MIN_INTERVAL = 0.5

    def __init__(self, job: Job, total: int):
        self.job = job
        self.total = max(total, 1)
        self.last_write = 0.0

    def stage_reporter(self, index: int):
        return lambda fraction: self.save(index, fraction)

    def save(self, stages_done: int, fraction: float, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last_write < self.MIN_INTERVAL:
            return
        self.last_write = now
        percent = round(100 * (stages_done + max(0.0, min(float(fraction), 1.0))) / self.total, 1)
        Job.objects.filter(pk=self.job.pk).update(progress=percent)
