"""Throughput benchmark: submit N `echo` jobs, then drain them with a real worker.

Run by hand, never in CI. It uses the configured database and broker (the
`DATABASE_URL` and `DRAMATIQ_BROKER_URL` of the environment), for example::

    DEBUG=1 DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \\
        DRAMATIQ_BROKER_URL=redis://127.0.0.1:6379/3 .venv/bin/python bench/throughput.py --jobs 2000

Sequential mode (the default):

1. enqueue: `job_submit` N times through the service (each job is created, then
   handed to the broker after its transaction commits), with no worker running;
2. drain: start `manage.py rundramatiq` and time it until all N jobs are
   `completed`, then stop it with SIGTERM.

The creation->start delay then includes the enqueue backlog: every job waits
until the worker exists. `--concurrent` starts the worker (and waits for it to
run a warm-up job) before enqueueing, so that the delay is the queueing latency
under load.

Only the rows the run created are touched: its jobs are tagged with a unique
`action` and deleted at the end (stage runs and results go with them by
cascade), with the broker messages that were sent for them, unless `--keep`.
The audit rows written about those jobs are purged too.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import deque
from contextlib import suppress
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

try:
    from tqdm import tqdm  # optional: not in requirements.txt
except ImportError:
    tqdm = None

PIPELINE = "bench-echo"
PIPELINE_CONFIG = {
    "input_schema": {"type": "object"},
    "stages": [{"name": "echo", "type": "echo"}],
    "max_attempts": 1,
}
QUEUE = "jobs"
POLL_SECONDS = 0.5
PRINT_EVERY_SECONDS = 5.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--jobs", type=int, default=20000, help="number of jobs to submit (default 20000)")
    parser.add_argument("--threads", type=int, default=8, help="worker threads per process (default 8)")
    parser.add_argument("--processes", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for the drain (default 600)")
    parser.add_argument(
        "--concurrent",
        action="store_true",
        help="start the worker before enqueueing: the delay is then the queueing latency under load",
    )
    parser.add_argument("--flush", action="store_true", help="drop every message left on the 'jobs' queue first")
    parser.add_argument("--keep", action="store_true", help="keep the bench jobs, broker rows and worker log")
    args = parser.parse_args()
    if args.jobs < 1 or args.threads < 1 or args.processes < 1 or args.timeout <= 0:
        parser.error("--jobs, --threads, --processes and --timeout must be positive")
    return args


def setup_django() -> None:
    """Configure the environment (inherited by the worker) and set Django up."""
    import environ

    # Read `.env` the way the settings do (values already in the environment
    # win), so that the SECRET_KEY check below sees it too.
    if (ROOT / ".env").exists():
        environ.Env.read_env(ROOT / ".env", overwrite=False)
    os.environ["DJANGO_SETTINGS_MODULE"] = "jobsite.settings"
    if not os.environ.get("SECRET_KEY"):
        if "DEBUG" not in os.environ:
            # A bench, not a deployment: without a SECRET_KEY the settings only
            # start with DEBUG on, and its development key is good enough here.
            os.environ["DEBUG"] = "1"
        elif not environ.Env().bool("DEBUG", default=False):
            sys.exit("bench: set SECRET_KEY (or unset DEBUG / set DEBUG=1 for the development key).")

    from django.conf import settings

    if settings.DRAMATIQ_BROKER_URL.split("://", 1)[0] == "stub":
        sys.exit("bench: the stub broker cannot reach a worker process; set DRAMATIQ_BROKER_URL to db, redis or amqp.")

    import django

    django.setup()


# -- the broker ------------------------------------------------------------------


def make_recorder():
    """A middleware that records the messages sent for jobs, for the cleanup."""
    import dramatiq

    class SentMessages(dramatiq.Middleware):
        def __init__(self):
            self.message_ids: list[str] = []
            self.redis_ids: list[str] = []

        def after_enqueue(self, broker, message, delay):
            if message.actor_name == "jobs_run":
                self.message_ids.append(message.message_id)
                if "redis_message_id" in message.options:
                    self.redis_ids.append(message.options["redis_message_id"])

    return SentMessages()


def broker_kind(broker) -> str:
    from dramatiq.brokers.redis import RedisBroker

    from jobsite.broker.backend import DatabaseBroker

    if isinstance(broker, DatabaseBroker):
        return "db"
    if isinstance(broker, RedisBroker):
        return "redis"
    return "amqp"


def queue_depth(broker) -> int:
    """Messages waiting or in flight on the jobs queue (and its delay queue)."""
    kind = broker_kind(broker)
    if kind == "db":
        from jobsite.broker.models import BrokerMessage

        states = [BrokerMessage.State.READY, BrokerMessage.State.LEASED]
        return broker.messages.filter(queue_name=QUEUE, state__in=states).count()
    if kind == "redis":
        return int(broker.do_qsize(QUEUE))
    main, delayed, _dead = broker.get_queue_message_counts(QUEUE)
    return main + delayed


def chunks(items: list, size: int = 500):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def delete_broker_leftovers(broker, recorder) -> str:
    """Delete what is left on the broker of the messages this run sent."""
    kind = broker_kind(broker)
    if kind == "db":
        deleted = 0
        for ids in chunks(recorder.message_ids):
            deleted += broker.messages.filter(message_id__in=ids).delete()[0]
        return f"{deleted} broker_message rows"
    if kind == "redis":
        client, deleted = broker.client, 0
        for queue in (QUEUE, f"{QUEUE}.DQ", f"{QUEUE}.XQ"):
            key = f"{broker.namespace}:{queue}"
            for ids in chunks(recorder.redis_ids, 1000):
                present = [i for i, body in zip(ids, client.hmget(f"{key}.msgs", ids), strict=True) if body]
                if not present:
                    continue
                pipe = client.pipeline()
                pipe.hdel(f"{key}.msgs", *present)
                if queue.endswith(".XQ"):
                    pipe.zrem(key, *present)
                else:
                    for message_id in present:
                        pipe.lrem(key, 0, message_id)
                pipe.execute()
                deleted += len(present)
        # A worker stopped mid-fetch can leave ids in its set of unacked messages.
        stale = 0
        for key in client.scan_iter(match=f"{broker.namespace}:__acks__.*.{QUEUE}*"):
            for ids in chunks(recorder.redis_ids, 1000):
                stale += client.srem(key, *ids)
        return f"{deleted} redis messages" + (f" and {stale} stale unacked ids" if stale else "")
    # RabbitMQ cannot delete chosen messages; a leftover one finds no job and is ignored.
    left = queue_depth(broker)
    return f"nothing on RabbitMQ ({left} messages on '{QUEUE}'; --flush drops them)" if left else "nothing"


# -- the worker ------------------------------------------------------------------


class Worker:
    """`manage.py rundramatiq` in its own process group, logging to a file."""

    def __init__(self, processes: int, threads: int):
        self.log = tempfile.NamedTemporaryFile(prefix="bench-worker-", suffix=".log", delete=False)  # noqa: SIM115
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        command = [sys.executable, "manage.py", "rundramatiq", "--processes", str(processes), "--threads", str(threads)]
        self.proc = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def check(self) -> None:
        if self.proc.poll() is not None:
            raise BenchError(f"the worker exited with {self.proc.returncode}:\n{self.tail()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()

    def tail(self, lines: int = 20) -> str:
        with open(self.log.name, errors="replace") as log:
            return "".join(deque(log, maxlen=lines))


class BenchError(RuntimeError):
    pass


# -- measuring -------------------------------------------------------------------


def job_counts(jobs) -> dict[str, int]:
    """Count the run's jobs by outcome, in one query."""
    from django.db.models import Count, Q

    from jobs.models import JobStatus

    return jobs.aggregate(
        completed=Count("pk", filter=Q(status=JobStatus.COMPLETED)),
        failed=Count("pk", filter=Q(status=JobStatus.FAILED)),
        pending=Count("pk", filter=Q(status=JobStatus.PENDING)),
    )


def enqueue(n: int, tag: str) -> float:
    """Submit n jobs through the service; return the seconds it took."""
    from jobs.services import JobSubmission, job_submit

    bar = tqdm(total=n, desc="enqueue", unit="job") if tqdm else None
    started = last_print = time.monotonic()
    for i in range(n):
        job_submit(submission=JobSubmission(pipeline=PIPELINE, input_data={"i": i}, username="bench", action=tag))
        if bar:
            bar.update()
        elif (now := time.monotonic()) - last_print >= PRINT_EVERY_SECONDS:
            last_print = now
            print(f"  enqueue {i + 1:>7}/{n}  {(i + 1) / (now - started):8.0f} jobs/s", flush=True)
    elapsed = time.monotonic() - started
    if bar:
        bar.close()
    return elapsed


def wait_for(jobs, n: int, worker: Worker, timeout: float, label: str) -> dict[str, int]:
    """Poll until n jobs are completed (or every job ended); return the last counts."""
    bar = tqdm(total=n, desc=label, unit="job") if tqdm else None
    deadline = time.monotonic() + timeout
    last_print = time.monotonic()
    try:
        while True:
            counts = job_counts(jobs)
            if bar:
                bar.update(counts["completed"] - bar.n)
            elif time.monotonic() - last_print >= PRINT_EVERY_SECONDS:
                last_print = time.monotonic()
                print(f"  {label} {counts['completed']:>7}/{n} completed, {counts['failed']} failed", flush=True)
            if counts["completed"] >= n or counts["completed"] + counts["failed"] >= n:
                return counts
            worker.check()
            if time.monotonic() > deadline:
                raise BenchError(f"{label}: timed out after {timeout:.0f} s with {counts['completed']}/{n} completed")
            time.sleep(POLL_SECONDS)
    finally:
        if bar:
            bar.close()


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank percentile of sorted values."""
    return values[max(0, math.ceil(q / 100 * len(values)) - 1)]


def delays(jobs) -> dict:
    """Percentiles of creation->start and start->completion, and the DB-side span."""
    from jobs.models import JobStatus

    rows = list(
        jobs.filter(status=JobStatus.COMPLETED).order_by().values_list("created_at", "started_at", "completed_at")
    )
    if not rows:
        return {}
    wait = sorted((started - created).total_seconds() * 1000 for created, started, _ in rows)
    run = sorted((completed - started).total_seconds() * 1000 for _, started, completed in rows)
    return {
        "wait": (percentile(wait, 50), percentile(wait, 95), wait[-1]),
        "run": (percentile(run, 50), percentile(run, 95), run[-1]),
        "first_start": min(started for _, started, _ in rows),
        "last_completion": max(completed for _, _, completed in rows),
    }


def ensure_worker_ready(pipeline, tag: str, worker: Worker, timeout: float = 120) -> float:
    """Run one warm-up job through the worker; return the seconds until it completed."""
    from jobs.models import Job
    from jobs.services import JobSubmission, job_submit

    started = time.monotonic()
    job_submit(submission=JobSubmission(pipeline=PIPELINE, input_data={}, username="bench", action=tag))
    wait_for(Job.objects.filter(pipeline=pipeline, action=tag), 1, worker, timeout, "warm-up")
    return time.monotonic() - started


# -- the run ---------------------------------------------------------------------


def main() -> int:
    args = parse_args()
    setup_django()

    import dramatiq
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    import jobs.actors  # noqa: F401  declares the jobs queue on this process's broker
    from jobs.models import Job
    from pipelines.services import pipeline_ensure

    call_command("migrate", verbosity=0, interactive=False)
    broker = dramatiq.get_broker()
    recorder = make_recorder()
    broker.add_middleware(recorder)
    scheme = settings.DRAMATIQ_BROKER_URL.split("://", 1)[0]

    if args.flush:
        before = queue_depth(broker)
        broker.flush(QUEUE)
        print(f"bench: flushed the '{QUEUE}' queue ({before} messages were waiting or in flight).")
    elif depth := queue_depth(broker):
        print(
            f"bench: WARNING the '{QUEUE}' queue already holds {depth} messages; the worker will process them "
            "too and slow the drain down (--flush drops them)."
        )

    pipeline, outcome = pipeline_ensure(
        name=PIPELINE, config=PIPELINE_CONFIG, description="Throughput benchmark (bench/throughput.py)."
    )
    tag = f"bench:{uuid.uuid4().hex[:12]}"
    warmup_tag = f"{tag}:warmup"
    bench_jobs = Job.objects.filter(pipeline=pipeline, action=tag)
    mode = "concurrent" if args.concurrent else "sequential"
    print(
        f"bench: {args.jobs} jobs on {connection.vendor} + {scheme} broker, worker {args.processes} process(es) x "
        f"{args.threads} threads, {mode} mode; pipeline {PIPELINE!r} {outcome}; run tag {tag!r}."
    )

    worker: Worker | None = None
    ok = False
    results: dict = {}
    try:
        if args.concurrent:
            worker_started_at = timezone.now()
            worker = Worker(args.processes, args.threads)
            results["ready_s"] = ensure_worker_ready(pipeline, warmup_tag, worker)
            print(f"bench: the worker is ready (warm-up job done {results['ready_s']:.1f} s after its start).")

        print("bench: phase 1, enqueue")
        started = time.monotonic()
        results["enqueue_s"] = enqueue(args.jobs, tag)
        results["enqueue_rate"] = args.jobs / results["enqueue_s"]
        print(f"bench: enqueued {args.jobs} jobs in {results['enqueue_s']:.1f} s: {results['enqueue_rate']:.0f} jobs/s")
        pending = job_counts(bench_jobs)["pending"]
        if pending:
            raise BenchError(f"{pending} jobs are still pending: the broker did not take them (see the log above)")

        if args.concurrent:
            print("bench: waiting for the worker to complete every job")
            wait_for(bench_jobs, args.jobs, worker, args.timeout, "complete")
            results["total_s"] = time.monotonic() - started
        else:
            print(f"bench: phase 2, drain ({args.processes} x {args.threads})")
            worker_started_at = timezone.now()
            drain_started = time.monotonic()
            worker = Worker(args.processes, args.threads)
            wait_for(bench_jobs, args.jobs, worker, args.timeout, "drain")
            results["drain_s"] = time.monotonic() - drain_started
            results["drain_rate"] = args.jobs / results["drain_s"]
            print(f"bench: drained {args.jobs} jobs in {results['drain_s']:.1f} s: {results['drain_rate']:.0f} jobs/s")
        worker.stop()
        counts = job_counts(bench_jobs)
        results.update(delays(bench_jobs), counts=counts, worker_started_at=worker_started_at)
        print_summary(args, connection, scheme, settings.DEBUG, results)
        ok = counts["completed"] == args.jobs
    except BenchError as exc:
        print(f"bench: FAILED: {exc}", file=sys.stderr)
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
    finally:
        if worker:
            worker.stop()
            if not ok:
                print(f"bench: last lines of the worker log {worker.log.name}:\n{worker.tail()}", file=sys.stderr)
        if args.keep:
            print(f"bench: kept the jobs tagged action={tag!r}" + (f", worker log {worker.log.name}" if worker else ""))
        else:
            cleanup(pipeline, (tag, warmup_tag), broker, recorder, worker if ok else None)
    return 0 if ok else 1


def cleanup(pipeline, tags, broker, recorder, worker: Worker | None) -> None:
    from jobs.models import Job

    started = time.monotonic()
    bench_jobs = Job.objects.filter(pipeline=pipeline, action__in=tags)
    job_ids = [str(pk) for pk in bench_jobs.values_list("pk", flat=True)]
    deleted, by_model = bench_jobs.delete()
    leftovers = delete_broker_leftovers(broker, recorder)
    if worker:
        with suppress(FileNotFoundError):
            os.unlink(worker.log.name)
    jobs = by_model.get("jobs.Job", 0)
    print(
        f"bench: cleaned up in {time.monotonic() - started:.1f} s: {jobs} jobs ({deleted} rows with their stage "
        f"runs and results), {leftovers}."
    )
    print(f"bench: removed {purge_audit_rows(job_ids)} audit rows about the bench jobs.")


def purge_audit_rows(job_ids: list[str]) -> int:
    """Remove the audit rows written about the bench's own jobs (test data, not history)."""
    from audit.models import AuditLog

    return sum(AuditLog.objects.filter(resource_type="job", resource_id__in=ids)._purge() for ids in chunks(job_ids))


def print_summary(args, connection, scheme: str, debug: bool, r: dict) -> None:
    def ms(triple) -> str:
        return "p50 {:.0f} / p95 {:.0f} / max {:.0f} ms".format(*triple) if triple else "n/a"

    def span(start: datetime | None, end: datetime | None) -> float:
        return (end - start).total_seconds() if start and end else float("nan")

    counts = r["counts"]
    lines = [
        ("database", f"{connection.vendor}" + (" (DEBUG on: Django logs every query)" if debug else "")),
        ("broker", scheme),
        ("mode", "concurrent (worker running while enqueueing)" if args.concurrent else "sequential"),
        ("jobs", f"{args.jobs}: {counts['completed']} completed, {counts['failed']} failed"),
        ("worker", f"{args.processes} process(es) x {args.threads} threads"),
        ("enqueue", f"{r['enqueue_rate']:.0f} jobs/s ({r['enqueue_s']:.1f} s)"),
    ]
    boot = span(r.get("worker_started_at"), r.get("first_start"))
    busy = span(r.get("first_start"), r.get("last_completion"))
    if args.concurrent:
        lines += [
            (
                "total",
                f"{r['total_s']:.1f} s from the first submit to the last completion: "
                f"{args.jobs / r['total_s']:.0f} jobs/s",
            ),
        ]
    else:
        lines += [
            (
                "drain",
                f"{r['drain_rate']:.0f} jobs/s ({r['drain_s']:.1f} s from the worker's start, "
                f"first job started after {boot:.1f} s)",
            ),
            ("  busy", f"{args.jobs / busy:.0f} jobs/s from the first start to the last completion ({busy:.1f} s)"),
        ]
    lines += [
        ("create->start", ms(r.get("wait"))),
        ("start->complete", ms(r.get("run"))),
    ]
    width = max(len(key) for key, _ in lines)
    print("\n== throughput summary ==")
    for key, value in lines:
        print(f"{key:<{width}}  {value}")
    if args.concurrent:
        print("note: the worker ran during the enqueue: create->start is the queueing latency under this load.")
    else:
        print(
            "note: create->start includes the enqueue backlog (jobs wait until the worker starts, after the "
            "enqueue phase); use --concurrent for the queueing latency under load."
        )


if __name__ == "__main__":
    sys.exit(main())
