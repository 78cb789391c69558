"""Webhook delivery benchmark: N job events delivered to a receiver on 127.0.0.1 by a real worker.

Run by hand, never in CI. It uses the configured database and broker (the
`DATABASE_URL` and `DRAMATIQ_BROKER_URL` of the environment), for example::

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test .venv/bin/python bench/webhooks.py --events 5000

For each scenario it:

1. starts a worker on the `webhooks` queue only (`manage.py rundramatiq -Q webhooks`),
   and a receiver on 127.0.0.1 that verifies every request with `standardwebhooks`
   and records when each `webhook-id` arrived;
2. writes N `job.completed` events, each in its own transaction through
   `jobs.events.job_event_record`, as the job path does (so each is handed to
   the dispatcher after its commit), from `--producers` threads, for N
   completed jobs of a user who has one subscription to `job.completed`;
3. waits until every event has arrived, then prints deliveries/s (N over the
   time from the first event to the last arrival) and the p50/p95 of
   event `created_at` -> first 2xx arrival at the receiver.

Scenarios: `healthy` (the receiver answers from the start) and `down` (nothing
listens on the receiver's port for `--down-seconds`, 60 by default; then it
comes back). In both, every event must arrive, and no webhook-id may arrive
twice once it was answered with a 2xx. The retry schedule used is printed;
`--schedule` sets it (the default compresses Svix's so that the `down` run ends
in minutes). `--hot-path` (PostgreSQL) also measures the subscription check
the job path embeds in its transitions, among `--subscriptions` rows.

Everything the run created (users, subscriptions, jobs, events, deliveries,
audit rows) is deleted at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict, deque
from contextlib import suppress
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_SCHEDULE = "0,2,5,10,20,40,60,120"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--processes", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--threads", type=int, default=8, help="worker threads per process (default 8)")
    parser.add_argument("--producers", type=int, default=4, help="threads writing the events (default 4)")
    parser.add_argument("--rate", type=float, default=0, help="events per second in all (default 0: a burst)")
    parser.add_argument("--scenario", choices=["healthy", "down", "both"], default="both")
    parser.add_argument("--down-seconds", type=float, default=60)
    parser.add_argument("--schedule", default=DEFAULT_SCHEDULE, help=f"retry delays in seconds ({DEFAULT_SCHEDULE})")
    parser.add_argument("--timeout", type=float, default=900, help="seconds to wait for every arrival")
    parser.add_argument("--hot-path", action="store_true", help="also time the job path's subscription check")
    parser.add_argument("--subscriptions", type=int, default=100_000, help="rows for --hot-path")
    return parser.parse_args()


def setup_django(schedule: str) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "jobsite.settings"
    os.environ.setdefault("DEBUG", "1")  # the development SECRET_KEY is fine for a bench
    os.environ["ALLOW_PRIVATE_NETWORK_URLS"] = "1"  # the receiver is on 127.0.0.1
    os.environ["WEBHOOK_RETRY_SCHEDULE_SECONDS"] = schedule
    import django

    django.setup()
    from django.conf import settings

    if settings.DRAMATIQ_BROKER_URL.startswith("stub"):
        sys.exit("bench: the stub broker cannot reach a worker; use db, redis or amqp.")


# -- the receiver --------------------------------------------------------------------


class Receiver:
    """A threaded HTTP server on 127.0.0.1 that verifies and records every delivery."""

    def __init__(self, port: int, secret: str):
        from standardwebhooks.webhooks import Webhook

        self.port, self.webhook = port, Webhook(secret)
        self.arrivals: dict[str, list[float]] = defaultdict(list)
        self.bad_signatures = 0
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                arrived = time.time()
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                try:
                    receiver.webhook.verify(body, dict(self.headers))
                except Exception:
                    with receiver.lock:
                        receiver.bad_signatures += 1
                    self.send_response(400)
                    self.end_headers()
                    return
                with receiver.lock:
                    receiver.arrivals[self.headers["webhook-id"]].append(arrived)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def count(self) -> int:
        with self.lock:
            return len(self.arrivals)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- the worker ------------------------------------------------------------------------


class Worker:
    def __init__(self, processes: int, threads: int):
        self.log = tempfile.NamedTemporaryFile(prefix="bench-webhooks-", suffix=".log", delete=False)  # noqa: SIM115
        command = [
            sys.executable,
            "manage.py",
            "rundramatiq",
            "-p",
            str(processes),
            "-t",
            str(threads),
            "-Q",
            "webhooks",
        ]
        self.proc = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "LOG_LEVEL": "WARNING"},
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def check(self) -> None:
        if self.proc.poll() is not None:
            with open(self.log.name, errors="replace") as log:
                tail = "".join(deque(log, maxlen=20))
            raise RuntimeError(f"the worker exited with {self.proc.returncode}:\n{tail}")

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
        os.unlink(self.log.name)


def wait_until_ready(worker: Worker, launched: datetime, timeout: float = 120) -> None:
    """Wait for the worker's first heartbeat (it records itself once its threads run)."""
    from jobs.models import WorkerProcess

    deadline = time.monotonic() + timeout
    while not WorkerProcess.objects.filter(started_at__gte=launched, stopped_at__isnull=True).exists():
        worker.check()
        if time.monotonic() > deadline:
            raise RuntimeError(f"the worker did not start within {timeout:.0f} s")
        time.sleep(0.2)


# -- one scenario -------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run_scenario(name: str, args, tag: str) -> dict:
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction
    from django.db.models import Sum

    from jobs.events import job_event_record
    from jobs.models import Job, JobEvent, JobStatus
    from pipelines.models import Pipeline
    from webhooks.services import webhook_subscription_create

    user = get_user_model().objects.create(username=f"bench-webhooks-{tag}-{name}")
    port = free_port()
    subscription, secret = webhook_subscription_create(
        owner=user, url=f"http://127.0.0.1:{port}/hook", events=["job.completed"], description=tag
    )
    pipeline, _ = Pipeline.objects.get_or_create(
        name="bench-webhooks", defaults={"config": {"stages": [{"name": "echo", "type": "echo"}]}}
    )
    now = datetime.now(UTC)
    jobs = Job.objects.bulk_create(
        Job(
            pipeline=pipeline,
            pipeline_version=pipeline.version,
            pipeline_config=pipeline.config,
            status=JobStatus.COMPLETED,
            user_id=user.pk,
            action=tag,
            started_at=now,
            completed_at=now,
            duration_ms=1,
        )
        for _ in range(args.events)
    )
    receiver = Receiver(port, secret)
    if name == "healthy":
        receiver.start()
    launched = datetime.now(UTC)
    worker = Worker(args.processes, args.threads)
    wait_until_ready(worker, launched)
    came_back = None
    try:
        started = time.time()
        back_at: list[float] = []
        if name == "down":  # nothing listens on the port until then

            def come_back():
                receiver.start()
                back_at.append(time.time())

            back = threading.Timer(args.down_seconds, come_back)
            back.start()

        def produce(share):
            interval = args.producers / args.rate if args.rate else 0
            try:
                for n, job in enumerate(share):
                    if interval and (wait := started + n * interval - time.time()) > 0:
                        time.sleep(wait)
                    with transaction.atomic():
                        job_event_record(
                            job_id=job.pk,
                            event_type="job.completed",
                            at=datetime.now(UTC),
                            user_id=user.pk,
                            data={"attempt": 1, "duration_ms": 1},
                        )
            finally:
                connection.close()

        producers = [threading.Thread(target=produce, args=(jobs[i :: args.producers],)) for i in range(args.producers)]
        for producer in producers:
            producer.start()
        for producer in producers:
            producer.join()
        produced = time.time() - started
        print(f"  {name}: {args.events} events written in {produced:.1f} s", flush=True)
        deadline = time.monotonic() + args.timeout
        last_print = time.monotonic()
        while receiver.count() < args.events:
            if name == "down" and came_back is None and back_at:
                came_back = back_at[0]
                print(f"  {name}: the receiver came back {came_back - started:.0f} s after the first event", flush=True)
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {receiver.count()} of {args.events} arrived in {args.timeout:.0f} s")
            if time.monotonic() - last_print > 10:
                print(f"  {name}: {receiver.count()} arrived", flush=True)
                last_print = time.monotonic()
            worker.check()
            time.sleep(0.2)
        time.sleep(2)  # a late duplicate would show now
        # The state change's time.
        created = dict(JobEvent.objects.filter(job__in=jobs).values_list("id", "created_at"))
        latencies, duplicates = [], 0
        for event_id, at in created.items():
            arrivals = receiver.arrivals.get(str(event_id), [])
            latencies.append(arrivals[0] - at.timestamp())
            duplicates += len(arrivals) > 1
        first_event = min(at.timestamp() for at in created.values())
        last_arrival = max(a[0] for a in receiver.arrivals.values())
        return {
            "scenario": name,
            "events": args.events,
            "arrived": receiver.count(),
            "duplicates": duplicates,
            "bad_signatures": receiver.bad_signatures,
            "deliveries_per_s": args.events / (last_arrival - first_event),
            "written_per_s": args.events / produced,
            "min_s": min(latencies),
            "p50_s": statistics.median(latencies),
            "p95_s": percentile(latencies, 0.95),
            "max_s": max(latencies),
            "attempts": subscription.deliveries.aggregate(n=Sum("attempts"))["n"],
        }
    finally:
        if name == "down":
            back.cancel()
        worker.stop()
        receiver.stop()
        cleanup(user, subscription, jobs)


def cleanup(user, subscription, jobs) -> None:
    from audit.models import AuditLog
    from jobs.models import Job

    ids = [job.pk for job in jobs]
    for start in range(0, len(ids), 1000):
        Job.objects.filter(pk__in=ids[start : start + 1000]).delete()
    AuditLog.objects.filter(resource_id=str(subscription.pk))._purge()
    subscription.delete()
    user.delete()


# -- the job path's subscription check -----------------------------------------------------------


def hot_path(args) -> dict:
    """Time `notify_sql` inside a statement like the run path's, among many subscriptions."""
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction

    from jobs.events import notify_sql
    from jobs.models import Job
    from pipelines.models import Pipeline
    from webhooks.models import WebhookSubscription
    from webhooks.secrets import secret_encrypt, secret_generate

    if connection.vendor != "postgresql":
        return {}
    users_n = max(1, args.subscriptions // 10)
    with transaction.atomic():
        users = get_user_model().objects.bulk_create(
            get_user_model()(username=f"bench-hot-{uuid.uuid4().hex[:12]}") for _ in range(users_n)
        )
        secret = secret_encrypt(secret_generate())
        WebhookSubscription.objects.bulk_create(
            (
                WebhookSubscription(
                    user=users[n % users_n],
                    url="http://127.0.0.1:9/hook",
                    events=["job.completed"] if n % 3 else ["job.started", "job.failed"],
                    secret=secret,
                    is_active=n % 2 == 0,
                )
                for n in range(args.subscriptions)
            ),
            batch_size=5000,
        )
        pipeline, _ = Pipeline.objects.get_or_create(name="bench-webhooks", defaults={"config": {"stages": []}})
        job = Job.objects.create(
            pipeline=pipeline, pipeline_version=1, pipeline_config={}, user_id=users[0].pk, webhook_url=""
        )
        row = [job.pk]
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE webhook_subscriptions")
            sql = f"SELECT {notify_sql('job.completed', 'j')} FROM jobs_job j WHERE j.id = %s"  # noqa: S608
            cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, row)
            plan = cursor.fetchone()[0]
            plan = json.loads(plan) if isinstance(plan, str) else plan
            timings = []
            for _ in range(2000):
                cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, row)
                result = cursor.fetchone()[0]
                result = json.loads(result) if isinstance(result, str) else result
                timings.append(result[0]["Execution Time"] * 1000)
            bare = []
            for _ in range(2000):
                cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) SELECT TRUE FROM jobs_job j WHERE j.id = %s", row)
                result = cursor.fetchone()[0]
                result = json.loads(result) if isinstance(result, str) else result
                bare.append(result[0]["Execution Time"] * 1000)
        transaction.set_rollback(True)  # leave nothing behind
    return {
        "subscriptions": args.subscriptions,
        "with_check_us": statistics.median(timings),
        "without_us": statistics.median(bare),
        "seq_scans": json.dumps(plan).count("Seq Scan"),
    }


def main() -> int:
    args = parse_args()
    setup_django(args.schedule)
    from django.db import connection

    load = os.getloadavg()
    print(
        f"bench/webhooks: {args.events} events from {args.producers} producers "
        f"({f'{args.rate:g}/s' if args.rate else 'a burst'}), "
        f"worker {args.processes} process(es) x {args.threads} threads, "
        f"database {connection.vendor}, broker {os.environ.get('DRAMATIQ_BROKER_URL', 'db')}, "
        f"schedule {args.schedule} s, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
        flush=True,
    )
    tag = uuid.uuid4().hex[:8]
    results = []
    scenarios = ["healthy", "down"] if args.scenario == "both" else [args.scenario]
    for name in scenarios:
        results.append(run_scenario(name, args, tag))
    for r in results:
        print(
            f"{r['scenario']:>8}: {r['arrived']}/{r['events']} arrived, {r['deliveries_per_s']:.0f} deliveries/s, "
            f"events written at {r['written_per_s']:.0f}/s, "
            f"state change -> receiver min {r['min_s'] * 1000:.0f} ms, p50 {r['p50_s'] * 1000:.0f} ms, "
            f"p95 {r['p95_s'] * 1000:.0f} ms, max {r['max_s']:.1f} s; {r['attempts']} attempts; "
            f"duplicates after success: {r['duplicates']}; "
            f"bad signatures: {r['bad_signatures']}"
        )
    if args.hot_path:
        h = hot_path(args)
        if h:
            print(
                f"hot path: among {h['subscriptions']} subscriptions the check costs "
                f"{h['with_check_us'] - h['without_us']:.0f} us (statement {h['with_check_us']:.0f} us with it, "
                f"{h['without_us']:.0f} us without; median of 2000); seq scans in its plan: {h['seq_scans']}"
            )
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    ok = all(r["arrived"] == r["events"] and not r["duplicates"] and not r["bad_signatures"] for r in results)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
