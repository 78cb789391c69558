"""Runs a job's stages in order, recording each stage run."""

from __future__ import annotations

import json
import logging
import traceback
from typing import Any

from django.utils import timezone

from jobs.models import Job, StageRun, StageRunStatus

from .registry import StageContext, get_stage_type

logger = logging.getLogger(__name__)


class StageFailed(Exception):
    """A stage raised; the job fails with this stage's error."""

    def __init__(self, stage_name: str, error: BaseException):
        super().__init__(f"Stage {stage_name!r} failed: {type(error).__name__}: {error}")
        self.stage_name = stage_name
        self.error = error


def _elapsed_ms(start, end) -> int:
    return max(0, round((end - start).total_seconds() * 1000))


def execute_stages(job: Job) -> Any:
    """Run every stage of the job's config snapshot; return the last stage's output.

    Each stage gets the previous stage's output (the job's input for the first)
    and the outputs of all earlier stages by name. A stage that raises is
    recorded as failed and :class:`StageFailed` is raised.
    """
    stages = job.pipeline_config.get("stages", [])
    outputs: dict[str, Any] = {}
    previous: Any = job.input_data
    for index, spec in enumerate(stages):
        run = StageRun.objects.create(
            job=job,
            index=index,
            name=spec["name"],
            stage_type=spec["type"],
            attempt=max(job.attempts, 1),
            started_at=timezone.now(),
        )
        context = StageContext(
            job_id=str(job.id),
            input=job.input_data,
            previous=previous,
            outputs=dict(outputs),
            params=spec.get("params") or {},
            report_progress=lambda fraction, i=index: _report_progress(job, i, len(stages), fraction),
        )
        try:
            output = get_stage_type(spec["type"]).func(context)
            json.dumps(output)
        except Exception as exc:
            run.status = StageRunStatus.FAILED
            run.error = f"{type(exc).__name__}: {exc}"
            run.traceback = traceback.format_exc()
            _finish(run)
            raise StageFailed(spec["name"], exc) from exc
        run.status = StageRunStatus.COMPLETED
        run.output = output
        _finish(run)
        outputs[spec["name"]] = previous = output
        _report_progress(job, index + 1, len(stages), 0.0)
    return previous


def _finish(run: StageRun) -> None:
    run.finished_at = timezone.now()
    run.duration_ms = _elapsed_ms(run.started_at, run.finished_at)
    run.save(update_fields=["status", "output", "error", "traceback", "finished_at", "duration_ms"])


def _report_progress(job: Job, stages_done: int, total: int, fraction: float) -> None:
    percent = round(100 * (stages_done + max(0.0, min(fraction, 1.0))) / max(total, 1), 1)
    Job.objects.filter(pk=job.pk).update(progress=percent)
