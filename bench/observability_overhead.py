"""The worker's per-job cost of metrics and JSON logs, measured on the run path's own hooks.

Run by hand, never in CI::

    .venv/bin/python bench/observability_overhead.py [--jobs 50000]

For each variant it runs, `--jobs` times, what the worker does per job beside
the job itself: the hooks jobs.run calls (jobsite.observability.jobs: the
start with its pickup latency, one stage, the outcome, the log context) and
the one INFO line per job, formatted and written (to /dev/null). It reports
the CPU time per job of each variant and the difference from the baseline (the
INFO line in the console format, as before metrics existed). The hooks write
to a PROMETHEUS_MULTIPROC_DIR as deployed (files in a temporary directory).
Compare the differences with the worker's CPU per job (about 0.55 ms).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def setup(multiprocess_dir: str) -> None:
    os.environ.update(
        DJANGO_SETTINGS_MODULE="jobsite.settings",
        SECRET_KEY="bench-secret-key-not-for-production",
        DEBUG="0",
        DATABASE_URL="sqlite:///:memory:",
        DRAMATIQ_BROKER_URL="stub",
        PROMETHEUS_MULTIPROC_DIR=multiprocess_dir,
    )
    import django

    django.setup()


def claimed_job():
    from django.utils import timezone

    from jobs.run import ClaimedJob, StageRecord

    now = timezone.now()
    job = ClaimedJob(
        id=uuid.uuid4(),
        pipeline="bench-echo",
        pipeline_version=1,
        config={"stages": [{"name": "echo", "type": "echo"}]},
        input_data={},
        attempts=1,
        max_attempts=1,
        priority=0,
        checkpoints_since=None,
        started_at=now,
        debug_mode=False,
        webhook_url="",
        request_id="0123456789abcdef0123456789abcdef",
        user_id=None,
        traceparent="",
        ready_at=now - timedelta(milliseconds=40),
        worker="host:1:abcdef/Thread-1",
    )
    record = StageRecord(
        index=0, name="echo", stage_type="echo", attempt=1, job_attempt=1, started_at=now, status="completed"
    )
    record.finished_at = now + timedelta(microseconds=300)
    return job, record


def logger_with(formatter: logging.Formatter) -> logging.Logger:
    from jobsite.api.request_id import RequestIdLogFilter

    handler = logging.StreamHandler(open(os.devnull, "w"))  # noqa: SIM115
    handler.setFormatter(formatter)
    handler.addFilter(RequestIdLogFilter())
    logger = logging.getLogger("bench.jobs.run")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger


def baseline(n: int, job, record, logger) -> None:
    for _ in range(n):
        logger.info("Job %s %s: %s attempt %d in %d ms.", job.id, "completed", job.pipeline, job.attempts, 3)


def observed(n: int, job, record, logger) -> None:
    from jobsite.observability.jobs import job_observed, run_observed, stage_observed

    for _ in range(n):
        with job_observed(job):
            logger.debug("Job %s claimed: %s attempt %d.", job.id, job.pipeline, job.attempts)
            stage_observed(job, record)
            logger.debug("Job %s stage %r %s in %d ms.", job.id, record.name, record.status, record.duration_ms)
            run_observed(job, "completed", 3)
            logger.info(
                "Job %s %s: %s attempt %d in %d ms.",
                job.id,
                "completed",
                job.pipeline,
                job.attempts,
                3,
                extra={"duration_ms": 3},
            )


def cpu_per_job(fn, n: int, *args) -> float:
    """Microseconds of CPU per job of one run."""
    started = time.process_time()
    fn(n, *args)
    return (time.process_time() - started) / n * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--jobs", type=int, default=20_000, help="jobs per variant and round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-metrics-") as directory:
        setup(directory)
        from jobsite.logging import ConsoleFormatter, JsonFormatter

        console = ConsoleFormatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")
        job, record = claimed_job()
        observed(1000, job, record, logger_with(JsonFormatter()))  # warm up: label children, files
        variants = [
            ("baseline: INFO line, console", baseline, console),
            ("baseline: INFO line, JSON", baseline, JsonFormatter()),
            ("hooks + INFO line, console", observed, console),
            ("hooks + INFO line, JSON", observed, JsonFormatter()),
        ]
        best = {name: float("inf") for name, _, _ in variants}
        # Interleaved rounds, the best of each: a busy machine slows whichever variant it catches.
        for _ in range(args.rounds):
            for name, fn, formatter in variants:
                best[name] = min(best[name], cpu_per_job(fn, args.jobs, job, record, logger_with(formatter)))
        rows = list(best.items())
    base = rows[0][1]
    print(f"bench: {args.jobs} jobs per variant, CPU per job (best of {args.rounds} rounds), multiprocess metric files")
    for name, micros in rows:
        print(f"  {name:<32} {micros:7.1f} us   (+{micros - base:5.1f} us over the baseline)")
    worker_us = 550  # the worker's CPU per one-stage job, bench/throughput.py on 2026-12-08
    added = rows[-1][1] - base
    print(f"The worker spends about {worker_us} us of CPU per job: +{added:.0f} us is {100 * added / worker_us:.0f} %.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
