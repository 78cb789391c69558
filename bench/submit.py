"""Submission cost: the service function, single POSTs (1 and 8 clients) and batch POSTs against gunicorn.

Uses its own database (`jobsite_bench_submit`, dropped and created here) and
Redis db 3 (or the database broker with `--broker db`). No worker runs: the
figure is the job's way into the broker. For each scenario it prints jobs/s,
CPU ms per job (this process for the service; the gunicorn tree for the API),
SQL statements per job (counted in the process that submits) and, for the API,
the client-side p50/p95 latency of a call. Medians of `--runs` runs.

    .venv/bin/python bench/submit.py --runs 3
    .venv/bin/python bench/submit.py --broker db --runs 3

gunicorn runs with `--workers 2 --threads 4` as a deployment would on this
2-core machine, with the service principal (`X-API-Secret`), which has no rate
limit by default.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness

DATABASE = "jobsite_bench_submit"
PIPELINE = "bench-echo-1"
CONFIG = {"input_schema": {"type": "object"}, "stages": [{"name": "echo", "type": "echo"}], "max_attempts": 1}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--broker", choices=["redis", "db"], default="redis")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--single", type=int, default=2000, help="jobs per single-POST scenario")
    parser.add_argument("--batch", type=int, default=20000, help="jobs per batch scenario (500 per call)")
    parser.add_argument("--service-only", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args()


def env_for(args) -> dict[str, str]:
    broker = harness.REDIS_URL if args.broker == "redis" else "db"
    return harness.base_env(harness.database_url(DATABASE), broker)


def reset(args) -> None:
    import psycopg

    with psycopg.connect(harness.database_url(DATABASE), autocommit=True) as conn:
        conn.execute("TRUNCATE jobs_job, jobs_jobevent, audit_auditlog, broker_message RESTART IDENTITY CASCADE")
    if args.broker == "redis":
        harness.flush_redis(harness.REDIS_URL)


def queued(n: int) -> int:
    import psycopg

    with psycopg.connect(harness.database_url(DATABASE), autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM jobs_job WHERE status = 'queued'").fetchone()[0]


# -- the service, in a child process with Django set up ------------------------------------


def service(args) -> None:
    harness.setup_django(env_for(args))
    from django.db import connection

    from jobs import actors  # noqa: F401
    from jobs.services import JobSubmission, job_submit, job_submit_many
    from pipelines.services import pipeline_ensure

    pipeline_ensure(name=PIPELINE, config=CONFIG)
    statements = [0]

    def count(execute, sql, params, many, context):
        statements[0] += 1
        return execute(sql, params, many, context)

    results = {}
    with connection.execute_wrapper(count):
        for label, n, submit in (
            ("service single", args.single, lambda i: job_submit(submission=JobSubmission(PIPELINE, {"i": i}))),
            ("service batch (500)", args.batch, None),
        ):
            statements[0] = 0
            cpu0, wall0 = time.process_time(), time.monotonic()
            if submit:
                for i in range(n):
                    submit(i)
            else:
                for start in range(0, n, 500):
                    job_submit_many(submissions=[JobSubmission(PIPELINE, {"i": i}) for i in range(start, start + 500)])
            wall, cpu = time.monotonic() - wall0, time.process_time() - cpu0
            results[label] = {
                "jobs_per_s": round(n / wall, 1),
                "cpu_ms_per_job": round(cpu * 1000 / n, 3),
                "statements_per_job": round(statements[0] / n, 2),
            }
    print(json.dumps(results))


# -- the API, against gunicorn -----------------------------------------------------------------


class Web:
    def __init__(self, args):
        self.counts = tempfile.mkdtemp(prefix="bench-web-sqlcount-")
        self.port = harness_free_port()
        env = {**os.environ, **env_for(args), "BENCH_SQLCOUNT_DIR": self.counts}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "jobsite.wsgi:application", "-b", f"127.0.0.1:{self.port}",
             "--workers", "2", "--threads", "4", "-c", "bench/gunicorn_sqlcount.py", "--log-level", "warning"],
            cwd=harness.ROOT, env=env, start_new_session=True,
        )  # fmt: skip
        self.url = f"http://127.0.0.1:{self.port}"
        import requests

        assert harness.wait_until(lambda: _up(requests, self.url), 60), "gunicorn did not start"

    def stop(self) -> dict[str, int]:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)
        return harness.sqlcounts(self.counts)


def harness_free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _up(requests, url) -> bool:
    try:
        return requests.get(f"{url}/health", timeout=1).status_code == 200
    except requests.RequestException:
        return False


def api_scenario(args, label: str, clients: int, calls: list[dict], path: str, jobs: int) -> dict:
    import requests

    reset(args)
    web = Web(args)
    sessions = threading.local()
    headers = {"X-API-Secret": "bench-api-secret"}
    latencies: list[float] = []

    def call(body):
        session = getattr(sessions, "s", None) or requests.Session()
        sessions.s = session
        started = time.monotonic()
        response = session.post(f"{web.url}{path}", json=body, headers=headers, timeout=120)
        latencies.append(time.monotonic() - started)
        if response.status_code not in (200, 201):
            raise RuntimeError(f"{response.status_code}: {response.text[:300]}")

    try:
        call(calls[0])  # warm-up: imports, connections, the pipeline cache
        cpu0 = harness.tree_cpu_seconds(web.proc.pid)
        latencies.clear()
        wall0 = time.monotonic()
        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(call, calls[1:]))
        wall = time.monotonic() - wall0
        cpu = harness.tree_cpu_seconds(web.proc.pid) - cpu0
    finally:
        counts = web.stop()
    per_call = jobs / len(calls)
    measured = jobs - per_call
    latencies.sort()
    return {
        "scenario": label,
        "jobs_per_s": round(measured / wall, 1),
        "web_cpu_ms_per_job": round(cpu * 1000 / measured, 3),
        "statements_per_job": round(counts.get("statements", 0) / jobs, 2),
        "call_p50_ms": round(latencies[len(latencies) // 2] * 1000, 1),
        "call_p95_ms": round(latencies[int(len(latencies) * 0.95)] * 1000, 1),
        "queued": queued(jobs),
    }


def main() -> int:
    args = parse_args()
    if args.service_only:
        service(args)
        return 0
    harness.fresh_database(DATABASE)
    harness.migrate(env_for(args))
    rows: dict[str, list[dict]] = {}
    for _run in range(args.runs):
        load = harness.load_average()
        reset(args)
        child = subprocess.run(
            [sys.executable, __file__, "--service-only", "--broker", args.broker, "--single", str(args.single),
             "--batch", str(args.batch)],
            cwd=harness.ROOT, env={**os.environ, **env_for(args)}, capture_output=True, text=True,
        )  # fmt: skip
        if child.returncode:
            raise SystemExit(child.stderr[-3000:])
        for label, figures in json.loads(child.stdout.strip().splitlines()[-1]).items():
            rows.setdefault(label, []).append({**figures, "load_average": load})
        single = [{"pipeline": PIPELINE, "input_data": {"i": i}} for i in range(args.single + 1)]
        batches = [
            {"jobs": [{"pipeline": PIPELINE, "input_data": {"i": i}} for i in range(start, start + 500)]}
            for start in range(0, args.batch + 500, 500)
        ]
        for label, clients, calls, path, jobs in (
            ("POST /jobs/, 1 client", 1, single, "/api/v1/jobs/", len(single)),
            ("POST /jobs/, 8 clients", 8, single, "/api/v1/jobs/", len(single)),
            ("POST /jobs/batch/ (500), 1 client", 1, batches, "/api/v1/jobs/batch/", len(batches) * 500),
            ("POST /jobs/batch/ (500), 2 clients", 2, batches, "/api/v1/jobs/batch/", len(batches) * 500),
        ):
            result = api_scenario(args, label, clients, calls, path, jobs)
            result["load_average"] = load
            print(json.dumps(result), flush=True)
            rows.setdefault(label, []).append(result)
    print(f"\n== submission on the {args.broker} broker (medians of {args.runs} runs) ==")
    for label, results in rows.items():
        keys = [k for k in results[0] if k not in ("scenario", "load_average", "queued")]
        figures = ", ".join(f"{k} {harness.median([r[k] for r in results])}" for k in keys)
        print(f"{label}: {figures}  [load: {'; '.join(r['load_average'] for r in results)}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
