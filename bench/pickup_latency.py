"""Pickup latency: the time from a job's creation to its start, idle and under a steady 50 jobs/s.

Uses its own database (`jobsite_bench_pickup`, dropped and created here),
starts a real worker (1 process x 8 threads) on the chosen broker, waits until
it runs a first job, then submits through the service one job at a time:

- idle: 200 jobs, 100 ms apart (the worker is idle when each arrives);
- loaded: 50 jobs/s for 10 s.

It prints p50/p95/p99 of `started_at - created_at` (both written by the
application's clock on this machine). Medians of `--runs` runs.

    .venv/bin/python bench/pickup_latency.py --broker redis --runs 3
    .venv/bin/python bench/pickup_latency.py --broker db --runs 3
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness

DATABASE = "jobsite_bench_pickup"
PIPELINE = "bench-echo-1"
CONFIG = {"input_schema": {"type": "object"}, "stages": [{"name": "echo", "type": "echo"}], "max_attempts": 1}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--broker", choices=["redis", "db"], default="redis")
    parser.add_argument("--runs", type=int, default=3)
    return parser.parse_args()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def latencies(tag: str) -> list[float]:
    from jobs.models import Job

    rows = Job.objects.filter(action=tag, started_at__isnull=False).values_list("created_at", "started_at")
    return [(started - created).total_seconds() * 1000 for created, started in rows]


def submit_paced(tag: str, count: int, interval: float) -> None:
    from jobs.services import JobSubmission, job_submit

    next_at = time.monotonic()
    for i in range(count):
        job_submit(submission=JobSubmission(PIPELINE, {"i": i}, action=tag))
        next_at += interval
        time.sleep(max(0.0, next_at - time.monotonic()))


def wait_for_all(tag: str, count: int, timeout: float = 120) -> None:
    from jobs.models import Job

    if not harness.wait_until(lambda: Job.objects.filter(action=tag, status="completed").count() >= count, timeout):
        raise SystemExit(f"bench: {tag} did not complete")


def main() -> int:
    args = parse_args()
    broker = harness.REDIS_URL if args.broker == "redis" else "db"
    env = harness.base_env(harness.fresh_database(DATABASE), broker)
    harness.migrate(env)
    if args.broker == "redis":
        harness.flush_redis(harness.REDIS_URL)
    harness.setup_django(env)
    from jobs import actors  # noqa: F401
    from jobs.services import JobSubmission, job_submit
    from pipelines.services import pipeline_ensure

    pipeline_ensure(name=PIPELINE, config=CONFIG)
    worker = subprocess.Popen(
        [sys.executable, "manage.py", "worker", "--threads", "8"],
        cwd=harness.ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    figures: dict[str, list[tuple[float, float, float]]] = {"idle": [], "50 jobs/s": []}
    loads = []
    try:
        job_submit(submission=JobSubmission(PIPELINE, {}, action="warm-up"))
        wait_for_all("warm-up", 1)
        for run in range(1, args.runs + 1):
            loads.append(harness.load_average())
            for label, count, interval in (("idle", 200, 0.1), ("50 jobs/s", 500, 0.02)):
                tag = f"{label}-{run}"
                submit_paced(tag, count, interval)
                wait_for_all(tag, count)
                values = latencies(tag)
                row = (percentile(values, 50), percentile(values, 95), percentile(values, 99))
                figures[label].append(row)
                print(f"run {run} {label}: p50 {row[0]:.1f} ms, p95 {row[1]:.1f} ms, p99 {row[2]:.1f} ms", flush=True)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(60)
    print(f"\n== pickup latency on the {args.broker} broker (medians of {args.runs} runs; load {'; '.join(loads)}) ==")
    for label, rows in figures.items():
        p50, p95, p99 = (harness.median([row[i] for row in rows]) for i in range(3))
        print(f"{label:<10} p50 {p50:.1f} ms  p95 {p95:.1f} ms  p99 {p99:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
