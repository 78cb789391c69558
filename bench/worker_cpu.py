"""The worker's CPU per job: a real `manage.py worker` drains N one-stage `echo` jobs; its CPU time is read with psutil.

Run by hand, never in CI, in a benchmark database of its own::

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/jobsite_bench_cpu \\
    DRAMATIQ_BROKER_URL=redis://127.0.0.1:6379/3 SECRET_KEY=bench DEBUG=0 \\
        .venv/bin/python bench/worker_cpu.py --jobs 5000 [--runs 3]

CPU time, unlike throughput, hardly depends on what else the machine runs,
so two configurations (LOG_FORMAT, PROMETHEUS_MULTIPROC_DIR, or two checkouts)
can be compared on a busy machine. Each run starts the worker, lets it go
idle, measures its idle CPU for a few seconds, submits the jobs in batches
(job_submit_many, from this process), waits until they are all completed and
reports the worker's CPU per job with its idle CPU over the same time taken
off. The jobs are deleted afterwards.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402

PIPELINE = "bench-echo"
CONFIG = {"input_schema": {"type": "object"}, "stages": [{"name": "echo", "type": "echo"}], "max_attempts": 1}


def tree_cpu(proc: psutil.Process) -> float:
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def wait(predicate, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit("bench: timed out")
        time.sleep(0.2)


def one_run(jobs: int, threads: int) -> float:
    from jobs.models import Job, JobStatus, WorkerProcess
    from jobs.services import JobSubmission, job_submit_many

    log = open(os.devnull, "wb")  # noqa: SIM115
    started_at = time.time()
    worker = subprocess.Popen(
        [sys.executable, "manage.py", "worker", "--threads", str(threads)],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    proc = psutil.Process(worker.pid)
    tag = f"bench-cpu:{uuid.uuid4().hex[:8]}"
    try:
        wait(lambda: WorkerProcess.objects.filter(pid__in=[p.pid for p in proc.children(recursive=True)]).exists(), 60)
        time.sleep(2)
        idle_from, idle_cpu = time.monotonic(), tree_cpu(proc)
        time.sleep(3)
        idle_rate = (tree_cpu(proc) - idle_cpu) / (time.monotonic() - idle_from)

        cpu0, t0 = tree_cpu(proc), time.monotonic()
        for start in range(0, jobs, 500):
            batch = [
                JobSubmission(pipeline=PIPELINE, input_data={"i": i}, username="bench", action=tag)
                for i in range(start, min(start + 500, jobs))
            ]
            job_submit_many(submissions=batch)
        mine = Job.objects.filter(action=tag)
        wait(lambda: mine.filter(status=JobStatus.COMPLETED).count() == jobs, 600)
        cpu1, t1 = tree_cpu(proc), time.monotonic()
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
        Job.objects.filter(action=tag).delete()
        log.close()
    per_job = (cpu1 - cpu0 - idle_rate * (t1 - t0)) / jobs
    print(
        f"bench: {jobs} jobs in {t1 - t0:.1f} s, worker CPU {cpu1 - cpu0:.2f} s (idle {idle_rate * (t1 - t0):.2f} s): "
        f"{per_job * 1e6:.0f} us per job (started {time.strftime('%H:%M:%S', time.localtime(started_at))})",
        flush=True,
    )
    return per_job


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jobsite.settings")
    import django

    django.setup()
    from django.core.management import call_command

    from pipelines.services import pipeline_ensure

    call_command("migrate", verbosity=0, interactive=False)
    pipeline_ensure(name=PIPELINE, config=CONFIG, description="Benchmark (bench/worker_cpu.py).")
    results = sorted(one_run(args.jobs, args.threads) for _ in range(args.runs))
    print(f"bench: worker CPU per job, median of {args.runs}: {results[len(results) // 2] * 1e6:.0f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
