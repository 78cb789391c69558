"""Time from a worker's death (kill -9) to its job running again, with default settings.

Run by hand, never in CI:

    .venv/bin/python bench/recovery_time.py [--trials 3]

It starts a private PostgreSQL and Redis on spare ports (tests/chaos/servers.py),
a gunicorn, a scheduler (`manage.py crontab`) and a worker with the default
heartbeat, dead-worker and recovery settings; submits a job whose stage runs
long, SIGKILLs the worker's processes mid-stage, starts a replacement worker
(as a supervisor would) and measures until the job is claimed and running again. Goal:
under 60 s.
"""

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.chaos.servers import PrivatePostgres, PrivateRedis, free_port  # noqa: E402

SECRET = "bench-" + uuid.uuid4().hex


def spawn(env, args, log):
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def wait(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise SystemExit(f"timed out waiting for {what}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=3)
    args = parser.parse_args()
    python = sys.executable
    with PrivatePostgres() as postgres, PrivateRedis() as redis_server:
        db_url = postgres.create_database("recovery_bench")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "DRAMATIQ_", "JOB_", "WORKER_"))}
        env.update(
            DJANGO_SETTINGS_MODULE="jobsite.settings",
            DATABASE_URL=db_url,
            DRAMATIQ_BROKER_URL=redis_server.url,
            SECRET_KEY="bench-" + uuid.uuid4().hex,
            JOBSITE_API_SECRET=SECRET,
            ALLOWED_HOSTS="127.0.0.1",
            SECURE_COOKIES="0",
            DEBUG="0",
        )
        subprocess.run([python, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
        log = open(os.devnull, "wb")  # noqa: SIM115 - held for the processes' lifetime
        port = free_port()
        procs = [
            spawn(env, [Path(python).parent / "gunicorn", "jobsite.wsgi:application", "-b", f"127.0.0.1:{port}"], log),
            spawn(env, [python, "manage.py", "crontab"], log),
        ]
        url = f"http://127.0.0.1:{port}"
        headers = {"X-API-Secret": SECRET}
        wait(lambda: _up(url), 30, "the web server")
        requests.post(
            f"{url}/api/v1/pipelines/",
            json={"name": "long", "config": {"stages": [{"name": "nap", "type": "sleep", "params": {"seconds": 120}}]}},
            headers=headers,
            timeout=10,
        ).raise_for_status()

        def starts(job_id):
            """(processing now, times claimed): a stage run's row is written only when it finishes,
            so a running stage shows as its job `processing` after its latest `job.started` event."""
            with psycopg.connect(db_url, autocommit=True) as conn:
                status, claims = conn.execute(
                    "SELECT status, (SELECT count(*) FROM jobs_jobevent WHERE job_id = j.id AND type = 'job.started')"
                    " FROM jobs_job j WHERE id = %s",
                    [job_id],
                ).fetchone()
            return status == "processing", claims

        timings = []
        worker = spawn(env, [python, "manage.py", "worker", "--threads", "2"], log)
        try:
            for trial in range(1, args.trials + 1):
                job = requests.post(
                    f"{url}/api/v1/jobs/", json={"pipeline": "long", "input_data": {}}, headers=headers, timeout=10
                ).json()
                wait(lambda j=job["job_id"]: starts(j) == (True, 1), 60, "the stage to start")
                os.killpg(worker.pid, signal.SIGKILL)
                killed = time.monotonic()
                worker.wait()
                worker = spawn(env, [python, "manage.py", "worker", "--threads", "2"], log)
                wait(lambda j=job["job_id"]: starts(j) == (True, 2), 180, "the job to run again")
                timings.append(time.monotonic() - killed)
                print(f"trial {trial}: worker killed -> job running again in {timings[-1]:.1f} s")
                requests.post(f"{url}/api/v1/jobs/{job['job_id']}/cancel/", headers=headers, timeout=10)
        finally:
            for proc in [*procs, worker]:
                os.killpg(proc.pid, signal.SIGTERM)
            for proc in [*procs, worker]:
                proc.wait(timeout=30)
        print(
            f"median {statistics.median(timings):.1f} s, max {max(timings):.1f} s over {len(timings)} trials "
            "(defaults: WORKER_HEARTBEAT_SECONDS=5, WORKER_DEAD_AFTER_SECONDS=30, JOB_RECOVERY_INTERVAL_SECONDS=10; "
            "goal < 60 s)"
        )


def _up(url):
    try:
        return requests.get(f"{url}/health", timeout=2).status_code == 200
    except requests.RequestException:
        return False


if __name__ == "__main__":
    main()
