"""Throughput of the full durable job path: submit N jobs, then drain them with a real worker, on PostgreSQL.

Each run uses the benchmark's own database (`jobsite_bench_throughput`, dropped
and created by this script; never an existing one) and Redis db 3. Per run it
prints a JSON line; per scenario the medians:

- jobs/s drained from the worker's start (as the anchors measure) and in the
  steady state (from its first completion to its last);
- worker CPU ms per job and PostgreSQL CPU ms per job over the steady state;
- SQL statements and commits per job counted in the worker (bench/sqlcount.py),
  split into the job path, the broker's own statements and the heartbeat;
- the peak RSS of the worker processes (all of them, and Dramatiq's main process
  with `--worker rundramatiq`), as the anchors measure theirs;
- with `--with-anchors`, the same-session ratio to ../shared/anchors'
  `case2_dramatiq_pg` (minimal durable Dramatiq + PostgreSQL) and
  `case1_dramatiq` (bare Dramatiq), which this script runs too.

The full path is measured: the claim with its lock and heartbeat fields and
its `job.started` event, the stage runs, the result row, the completion with
its `job.completed` event. Submission goes through `job_submit_many` (500 per
transaction) before the worker starts.

    .venv/bin/python bench/throughput.py --broker redis --runs 3 --with-anchors
    .venv/bin/python bench/throughput.py --matrix --runs 3 --with-anchors   # both brokers, 1/2 processes, 1/3 stages

The drain is followed as the anchors follow theirs: the worker counts the jobs
it finishes and writes the count to a file every 50 ms (bench/sqlcount.py); a
`count(*)` over the jobs table every 50 ms, as this script did before, cost
PostgreSQL up to 23 ms each at 30,000 jobs and took a quarter of a core from
the machine it measured. The final count is checked in the database.

Run by hand on a quiet machine; figures on a shared 2-core machine drift, so
quote the ratio to the anchors and the load average printed with it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import suppress
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness

DATABASE = "jobsite_bench_throughput"
PIPELINES = {
    n: {"input_schema": {"type": "object"}, "stages": [{"name": f"s{i}", "type": "echo"} for i in range(n)],
        "max_attempts": 1}
    for n in (1, 3)
}  # fmt: skip
TABLES = "jobs_job, jobs_stagerun, jobs_jobresult, jobs_jobevent, broker_message, audit_auditlog, jobs_workerprocess"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--broker", choices=["redis", "db"], default="redis")
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument(
        "--worker", choices=["worker", "rundramatiq"], default="worker",
        help="`manage.py worker` (one process each, the default) or `manage.py rundramatiq` (Dramatiq's command "
        "line: a main process that starts the worker processes)",
    )  # fmt: skip
    parser.add_argument("--stages", type=int, choices=[1, 3], default=1)
    parser.add_argument("--jobs", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--matrix", action="store_true", help="both brokers x 1 and 2 processes x 1 and 3 stages")
    parser.add_argument("--with-anchors", action="store_true", help="run case2_dramatiq_pg and case1_dramatiq too")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="extra worker settings")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument(
        "--without-admin-indexes", action="store_true",
        help="drop the jobs table's admin list indexes first: what their upkeep costs each job",
    )  # fmt: skip
    parser.add_argument("--enqueue-only", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args()


def broker_url(kind: str) -> str:
    return harness.REDIS_URL if kind == "redis" else "db"


# -- the child that submits ------------------------------------------------------------


def enqueue(args) -> None:
    """(Child process) Submit the jobs through the service, 500 per transaction."""
    harness.setup_django(harness.base_env(harness.database_url(DATABASE), broker_url(args.broker)))
    from jobs import (
        actors,  # noqa: F401  declares the queues on this process's broker
        services,
    )
    from pipelines.services import pipeline_ensure

    name = f"bench-echo-{args.stages}"
    pipeline_ensure(name=name, config=PIPELINES[args.stages])
    started = time.monotonic()
    for start in range(0, args.jobs, 500):
        batch = [
            services.JobSubmission(pipeline=name, input_data={"i": i})
            for i in range(start, min(args.jobs, start + 500))
        ]
        if not hasattr(services, "job_submit_many"):  # an earlier jobsite, measured for comparison
            for submission in batch:
                services.job_submit(submission=submission)
            continue
        bad = [o for o in services.job_submit_many(submissions=batch) if isinstance(o, Exception)]
        if bad:
            raise SystemExit(f"bench: submission failed: {bad[0]}")
    print(json.dumps({"enqueue_s": time.monotonic() - started}))


# -- one run --------------------------------------------------------------------------------


def sql(query: str, *params):
    import psycopg

    with psycopg.connect(harness.database_url(DATABASE), autocommit=True) as conn:
        cursor = conn.execute(query, params)
        return cursor.fetchall() if cursor.description else []


def worker_commands(env: dict, kind: str, processes: int, threads: int) -> list[list[str]]:
    """The worker's command line(s), with the statement counter (bench/sqlcount.py) loaded after Django's setup.

    `worker`: `processes` separate `manage.py worker` processes, as containers would run them.
    `rundramatiq`: one `manage.py rundramatiq --processes N` (Dramatiq's main process and its N workers).
    """
    if kind == "worker":
        command = [sys.executable, "-c",
                   "import django; django.setup(); import bench.sqlcount;"
                   "from django.core.management import execute_from_command_line;"
                   f"execute_from_command_line(['manage.py', 'worker', '--threads', '{threads}'])"]  # fmt: skip
        return [command] * processes
    modules = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c",
         "from django_dramatiq.management.commands.rundramatiq import Command;"
         "print(' '.join(Command().discover_tasks_modules()))"],
        cwd=harness.ROOT, env={**os.environ, **env}, capture_output=True, text=True, check=True,
    ).stdout.strip().splitlines()[-1].split()  # fmt: skip
    modules.insert(modules.index("django_dramatiq.setup") + 1, "bench.sqlcount")
    return [[sys.executable, "-m", "dramatiq", "--path", ".", "--processes", str(processes), "--threads",
             str(threads), *modules]]  # fmt: skip


def one_run(args, run: int) -> dict:
    tables = [t for t in TABLES.split(", ") if sql("SELECT to_regclass(%s)", t)[0][0]]
    sql(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
    if args.broker == "redis":
        harness.flush_redis(harness.REDIS_URL)
    env = harness.base_env(harness.database_url(DATABASE), broker_url(args.broker))
    for item in args.env:
        name, _, value = item.partition("=")
        env[name] = value
    enqueued = subprocess.run(
        [sys.executable, __file__, "--enqueue-only", "--broker", args.broker, "--stages", str(args.stages),
         "--jobs", str(args.jobs)],
        cwd=harness.ROOT, env={**os.environ, **env}, capture_output=True, text=True,
    )  # fmt: skip
    if enqueued.returncode:
        raise SystemExit(enqueued.stderr[-3000:])
    enqueue_s = json.loads(enqueued.stdout.strip().splitlines()[-1])["enqueue_s"]
    sql("VACUUM ANALYZE")
    sql("CHECKPOINT")

    counts_dir = tempfile.mkdtemp(prefix="bench-sqlcount-")
    commands = worker_commands(env, args.worker, args.processes, args.threads)
    log = tempfile.NamedTemporaryFile(prefix="bench-worker-", suffix=".log", delete=False)  # noqa: SIM115
    load = harness.load_average()
    spawned = time.monotonic()
    workers = [
        subprocess.Popen(
            command, cwd=harness.ROOT, env={**os.environ, **env, "BENCH_SQLCOUNT_DIR": counts_dir},
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        for command in commands
    ]  # fmt: skip
    pids = [worker.pid for worker in workers]
    rss = harness.PeakRss(*pids)
    rss.start()
    first = last = None
    try:
        deadline = time.monotonic() + args.timeout
        while True:
            done = finished(counts_dir)
            now = time.monotonic()
            if first is None and done:
                first = (now, done, harness.tree_cpu_seconds(*pids), harness.postgres_cpu_seconds(),
                         xact_commits())  # fmt: skip
            if done >= args.jobs:
                last = (now, done, harness.tree_cpu_seconds(*pids), harness.postgres_cpu_seconds(),
                        xact_commits())  # fmt: skip
                break
            if any(worker.poll() is not None for worker in workers) or now > deadline:
                raise SystemExit(f"bench: the worker stopped or timed out at {done}/{args.jobs}; log {log.name}")
            time.sleep(0.05)
    finally:
        peak_mb = rss.stop()
        for worker in workers:
            with suppress(ProcessLookupError):
                worker.send_signal(signal.SIGTERM)  # rundramatiq: the main process only; it stops its workers
        for worker in workers:
            try:
                worker.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
    statuses = dict(sql("SELECT status, count(*) FROM jobs_job GROUP BY status"))
    counts = harness.sqlcounts(counts_dir)
    steady_jobs = last[1] - first[1]
    n = args.jobs
    result = {
        "run": run,
        "load_average": load,
        "jobs": n,
        "completed": statuses.get("completed", 0),
        "enqueue_jobs_per_s": round(n / enqueue_s, 1),
        "drain_jobs_per_s": round(n / (last[0] - spawned), 1),
        "steady_jobs_per_s": round(steady_jobs / (last[0] - first[0]), 1) if last[0] > first[0] else None,
        "worker_cpu_ms_per_job": round((last[2] - first[2]) * 1000 / max(steady_jobs, 1), 3),
        "postgres_cpu_ms_per_job": round((last[3] - first[3]) * 1000 / max(steady_jobs, 1), 3),
        "postgres_commits_per_job": round((last[4] - first[4]) / max(steady_jobs, 1), 2),
        "statements_per_job": round(counts.get("statements", 0) / n, 2),
        "job_path_statements_per_job": round(sum(v for k, v in counts.items() if k.startswith("job path")) / n, 2),
        "broker_statements_per_job": round(sum(v for k, v in counts.items() if k.startswith("broker")) / n, 2),
        "commits_per_job": round(counts.get("commits", 0) / n, 2),
        "peak_rss_mb": round(peak_mb, 1),
    }
    if result["completed"] != n:
        result["error"] = f"{statuses} (worker log {log.name})"
    else:
        os.unlink(log.name)
    return result


def finished(counts_dir: str) -> int:
    """The jobs the worker processes have finished so far, as they report them (bench/sqlcount.py)."""
    total = 0
    for path in Path(counts_dir).glob("*.done"):
        with suppress(OSError, ValueError):
            total += int(path.read_text())
    return total


def xact_commits() -> int:
    return sql("SELECT xact_commit FROM pg_stat_database WHERE datname = %s", DATABASE)[0][0]


# -- the invocation --------------------------------------------------------------------------


def scenarios(args):
    if not args.matrix:
        return [(args.broker, args.processes, args.stages)]
    return [(b, p, s) for b in ("redis", "db") for p in (1, 2) for s in (1, 3)]


# The jobs table's indexes that serve only the admin's filters and sorts (jobs/migrations/0008_admin_indexes.py
# and the stats' covering index); every non-HOT update of a job row writes an entry in each.
ADMIN_INDEXES = [
    "job_username_created_idx", "job_action_created_idx", "job_locked_by_idx", "job_duration_asc_idx",
    "job_duration_desc_idx", "job_error_created_idx", "job_priority_created_idx", "job_created_stats_idx",
    "job_completed_idx", "job_pipeline_created_idx",
]  # fmt: skip

MEDIAN_KEYS = [
    "drain_jobs_per_s", "steady_jobs_per_s", "enqueue_jobs_per_s", "worker_cpu_ms_per_job", "postgres_cpu_ms_per_job",
    "statements_per_job", "job_path_statements_per_job", "broker_statements_per_job", "commits_per_job",
    "postgres_commits_per_job", "peak_rss_mb",
]  # fmt: skip


def main() -> int:
    args = parse_args()
    if args.enqueue_only:
        enqueue(args)
        return 0
    harness.fresh_database(DATABASE)
    harness.migrate(harness.base_env(harness.database_url(DATABASE), "db"))
    if args.without_admin_indexes:
        for index in ADMIN_INDEXES:
            sql(f'DROP INDEX "{index}"')
    anchors = {}
    if args.with_anchors:
        for processes in sorted({p for _, p, _ in scenarios(args)}):
            variant = f"p{processes}t{args.threads}"
            anchors[processes] = {
                "case2": harness.run_anchor("case2_dramatiq_pg", variant, args.jobs, args.runs),
                "case1": harness.run_anchor("case1_dramatiq", variant, args.jobs, args.runs),
            }
    summary = []
    for broker, processes, stages in scenarios(args):
        args.broker, args.processes, args.stages = broker, processes, stages
        label = f"{broker} broker, {processes} x {args.threads} ({args.worker}), {stages} stage(s)"
        runs = []
        for run in range(1, args.runs + 1):
            result = one_run(args, run)
            print(json.dumps({"scenario": label, **result}), flush=True)
            runs.append(result)
        medians = {key: harness.median([r[key] for r in runs if r.get(key) is not None]) for key in MEDIAN_KEYS}
        for name, anchor in anchors.get(processes, {}).items():
            if anchor.get("process_jobs_per_s"):
                medians[f"ratio_to_{name}"] = round(medians["drain_jobs_per_s"] / anchor["process_jobs_per_s"], 2)
            if anchor.get("peak_rss_tree_mb"):
                medians[f"rss_ratio_to_{name}"] = round(medians["peak_rss_mb"] / anchor["peak_rss_tree_mb"], 2)
        summary.append((label, medians, [r["load_average"] for r in runs]))
    for processes, pair in anchors.items():
        for name, anchor in pair.items():
            print(f"anchor {name} p{processes}: {json.dumps(anchor)}")
    print("\n== throughput (medians of", args.runs, "runs) ==")
    for label, medians, loads in summary:
        print(f"{label}  [load averages: {'; '.join(loads)}]")
        for key, value in medians.items():
            print(f"  {key:<30} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
