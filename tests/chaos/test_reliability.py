"""Chaos: killed workers, a Redis outage, a PostgreSQL restart, poison jobs, SIGTERM.

Each test runs real gunicorn, Dramatiq worker and scheduler processes against
a database of its own in the private PostgreSQL and the private Redis (never
the shared servers), and checks the outcome in the database.
"""

import os
import signal
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from pathlib import Path

import psycopg
import pytest
import redis
import requests
from django.conf import settings

from tests.e2e.conftest import child_env, free_port, wait_until_healthy

pytestmark = [pytest.mark.chaos, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
HEADERS = {"X-API-Secret": settings.JOBSITE_API_SECRET}


class Stack:
    """The processes of one jobsite deployment on the private servers."""

    def __init__(self, postgres, redis_server, tmp_path):
        self.db_url = postgres.create_database(f"chaos_{uuid.uuid4().hex[:8]}")
        redis.Redis.from_url(redis_server.url).flushall()
        self.env = child_env(
            DATABASE_URL=self.db_url,
            DRAMATIQ_BROKER_URL=redis_server.url,
            CONN_MAX_AGE="0",
            WORKER_HEARTBEAT_SECONDS="1",
            WORKER_DEAD_AFTER_SECONDS="3",
            JOB_RECOVERY_INTERVAL_SECONDS="2",
            JOB_OUTBOX_RESEND_SECONDS="2",
            JOB_SHUTDOWN_GRACE_SECONDS="1",
            MEDIA_ROOT=str(tmp_path / "media"),
        )
        self.logs = tmp_path
        self.procs: list[subprocess.Popen] = []
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=self.env, check=True, timeout=180)
        subprocess.run(
            [sys.executable, "manage.py", "install_demo_pipelines"],
            cwd=ROOT, env=self.env, check=True, timeout=60, capture_output=True,
        )  # fmt: skip

    def _spawn(self, name, args):
        log = open(self.logs / f"{name}-{len(self.procs)}.log", "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(args, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip
        self.procs.append(proc)
        return proc

    def web(self):
        port = free_port()
        proc = self._spawn("web", [BIN / "gunicorn", "jobsite.wsgi:application", "-b", f"127.0.0.1:{port}",
                                   "-w", "2", "--threads", "4"])  # fmt: skip
        self.url = f"http://127.0.0.1:{port}"
        wait_until_healthy(self.url, proc)
        return proc

    def worker(self, threads=4):
        return self._spawn("worker", [sys.executable, "manage.py", "rundramatiq", "-p", "1", "-t", str(threads)])

    def scheduler(self):
        return self._spawn("scheduler", [sys.executable, "manage.py", "crontab"])

    def signal(self, proc, sig):
        """Signal a process and everything it started (a worker's master and its children)."""
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)

    def stop_all(self):
        for proc in self.procs:
            self.signal(proc, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.signal(proc, signal.SIGKILL)
                proc.wait()

    def query(self, sql, *params):
        with psycopg.connect(self.db_url, autocommit=True) as conn:
            return conn.execute(sql, params).fetchall()

    def pipeline(self, name, stages, max_attempts=3):
        response = requests.post(
            f"{self.url}/api/v1/pipelines/",
            json={"name": name, "config": {"stages": stages, "max_attempts": max_attempts}},
            headers=HEADERS, timeout=10,
        )  # fmt: skip
        assert response.status_code == 201, response.text

    def submit(self, pipeline, **input_data):
        return requests.post(
            f"{self.url}/api/v1/jobs/", json={"pipeline": pipeline, "input_data": input_data}, headers=HEADERS,
            timeout=15,
        )  # fmt: skip

    def submit_as_a_client_would(self, pipeline, **input_data):
        """Submit with an Idempotency-Key and retry what never reached an answer (a reset
        connection, a timeout), as a careful client does; the server's answers are final."""
        headers = {**HEADERS, "Idempotency-Key": uuid.uuid4().hex}
        body = {"pipeline": pipeline, "input_data": input_data}
        url = f"{self.url}/api/v1/jobs/"
        for backoff in (1, 2, 4, 8, 16):
            try:
                return requests.post(url, json=body, headers=headers, timeout=30)
            except (requests.ConnectionError, requests.Timeout):
                time.sleep(backoff)
        return requests.post(url, json=body, headers=headers, timeout=30)

    def status(self, job_id):
        return self.query("SELECT status FROM jobs_job WHERE id = %s", job_id)[0][0]

    def wait(self, predicate, timeout, what):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}; logs in {self.logs}")

    def stage_running(self, job_id, stage, attempt=1):
        """Whether the job's attempt `attempt` runs `stage`: the stages before it finished (their runs are
        written when they finish) and the job is still processing."""
        config, status, attempts = self.query(
            "SELECT pipeline_config, status, attempts FROM jobs_job WHERE id = %s", job_id
        )[0]  # fmt: skip
        names = [spec["name"] for spec in config["stages"]]
        before = names[: names.index(stage)]
        done = {row[0] for row in self.query(
            "SELECT name FROM jobs_stagerun WHERE job_id = %s AND status = 'completed'", job_id
        )}  # fmt: skip
        return status == "processing" and attempts == attempt and set(before) <= done


@pytest.fixture
def stack(private_postgres, private_redis, tmp_path):
    stack = Stack(private_postgres, private_redis, tmp_path)
    yield stack
    stack.stop_all()


def test_kill_9_mid_second_stage_then_recovery_completes_the_job(stack, capsys):
    stack.web()
    worker = stack.worker()
    stack.scheduler()
    stack.pipeline("three", [{"name": "first", "type": "echo"},
                             {"name": "second", "type": "sleep", "params": {"seconds": 4}},
                             {"name": "third", "type": "echo"}])  # fmt: skip
    job_id = stack.submit("three", n=1).json()["job_id"]
    stack.wait(lambda: stack.stage_running(job_id, "second"), 30, "the second stage to start")

    stack.signal(worker, signal.SIGKILL)
    killed_at = time.time()
    stack.worker()  # the replacement a supervisor would start
    stack.wait(lambda: stack.stage_running(job_id, "second", attempt=2) or stack.status(job_id) == "completed",
               60, "the job to run again")  # fmt: skip
    running_again = time.time() - killed_at
    stack.wait(lambda: stack.status(job_id) == "completed", 60, "the job to complete")

    # The killed attempt left no run of "second" (a run is written when its stage finishes); "first" ran once.
    runs = stack.query("SELECT name, status, job_attempt FROM jobs_stagerun WHERE job_id = %s ORDER BY index", job_id)
    assert runs == [("first", "completed", 1), ("second", "completed", 2), ("third", "completed", 2)]
    assert stack.query("SELECT attempts FROM jobs_job WHERE id = %s", job_id)[0][0] == 2
    with capsys.disabled():
        print(f"\n[chaos] worker killed -> job running again in {running_again:.1f} s")


def test_redis_outage_while_1000_jobs_are_submitted_loses_nothing(stack, private_redis, capsys):
    stack.web()
    stack.worker(threads=8)
    stack.scheduler()
    stack.pipeline("quick", [{"name": "only", "type": "echo"}])
    private_redis.stop()
    answers: list[tuple[int, str | None]] = []  # each submission's final server answer: status, job id

    def submit_all():
        for n in range(1000):
            response = stack.submit_as_a_client_would("quick", n=n)
            accepted = response.status_code in (200, 201)
            answers.append((response.status_code, response.json()["job_id"] if accepted else None))
            time.sleep(0.02)

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=1) as pool:
        submitting = pool.submit(submit_all)
        time.sleep(30)
        answered_during_outage = len(answers)
        private_redis.start()
        submitting.result(timeout=900)  # re-raises whatever stopped the submissions
    submitted_in = time.monotonic() - started

    statuses = [status for status, _ in answers]
    ids = {job_id for _, job_id in answers if job_id}
    with capsys.disabled():
        print(f"\n[chaos] 1000 submissions in {submitted_in:.0f} s, {answered_during_outage} while Redis was down; "
              f"answers: { {s: statuses.count(s) for s in sorted(set(statuses))} }")  # fmt: skip
    assert len(answers) == 1000
    assert answered_during_outage >= 50, "the outage did not overlap the submissions"
    # A 200 is a retried submission the server had already accepted (same Idempotency-Key).
    assert set(statuses) <= {200, 201, 503}, sorted(set(statuses))
    assert len(ids) == statuses.count(200) + statuses.count(201) >= 900
    assert stack.query("SELECT count(*) FROM jobs_job")[0][0] == len(ids)  # retries created no second job
    stack.wait(
        lambda: stack.query("SELECT count(*) FROM jobs_job WHERE status = 'completed'")[0][0] == len(ids),
        300, "every accepted job to complete",
    )  # fmt: skip


def test_postgres_restart_while_200_jobs_are_processing(stack, private_postgres):
    stack.web()
    stack.worker(threads=8)
    stack.scheduler()
    stack.pipeline("steady", [{"name": "a", "type": "sleep", "params": {"seconds": 0.5}},
                              {"name": "b", "type": "echo"}])  # fmt: skip
    ids = [stack.submit("steady", n=n).json()["job_id"] for n in range(200)]
    stack.wait(lambda: stack.query("SELECT count(*) FROM jobs_job WHERE status = 'processing'")[0][0] >= 4,
               60, "jobs to be processing")  # fmt: skip

    private_postgres.restart()

    def finished():
        return stack.query("SELECT count(*) FROM jobs_job WHERE status IN ('completed', 'failed')")[0][0] == len(ids)

    stack.wait(finished, 240, "every job to finish")
    assert stack.query("SELECT status, count(*) FROM jobs_job GROUP BY status") == [("completed", 200)]
    without_result = stack.query(
        "SELECT count(*) FROM jobs_job j LEFT JOIN jobs_jobresult r ON r.job_id = j.id WHERE r.job_id IS NULL"
    )[0][0]
    assert without_result == 0


def test_poison_job_fails_after_max_attempts(stack):
    stack.web()
    stack.scheduler()
    stack.pipeline("poison", [{"name": "crash", "type": "sleep", "params": {"seconds": 30}}], max_attempts=2)
    job_id = stack.submit("poison").json()["job_id"]
    for attempt in (1, 2):
        worker = stack.worker()
        stack.wait(lambda a=attempt: stack.stage_running(job_id, "crash", attempt=a), 60, f"attempt {attempt}")
        stack.signal(worker, signal.SIGKILL)  # the job "kills its worker"
    stack.worker()  # the replacement a supervisor would start runs the recovery
    stack.wait(lambda: stack.status(job_id) == "failed", 60, "the poison job to fail")
    error, attempts = stack.query("SELECT error_message, attempts FROM jobs_job WHERE id = %s", job_id)[0]
    assert attempts == 2
    assert error.startswith("Worker lost: worker gone") and error.endswith("2 of 2 attempts spent")


def test_sigterm_during_a_long_stage_hands_the_job_back_and_it_completes_once(stack):
    stack.web()
    stack.scheduler()
    stack.pipeline("long", [{"name": "prep", "type": "echo"},
                            {"name": "nap", "type": "sleep", "params": {"seconds": 5}}])  # fmt: skip
    first = stack.worker()
    job_id = stack.submit("long").json()["job_id"]
    stack.wait(lambda: stack.stage_running(job_id, "nap"), 30, "the long stage to start")

    first.send_signal(signal.SIGTERM)  # to the master only, as `docker stop` does; it tells its workers
    first.wait(timeout=30)
    assert stack.status(job_id) in ("pending", "queued")
    stack.worker()
    stack.wait(lambda: stack.status(job_id) == "completed", 60, "the job to complete")

    runs = stack.query("SELECT name, status FROM jobs_stagerun WHERE job_id = %s ORDER BY index, attempt", job_id)
    assert runs == [("prep", "completed"), ("nap", "failed"), ("nap", "completed")]
    # The handed-back attempt does not count: the job's budget grew by one with it.
    assert stack.query("SELECT attempts, max_attempts FROM jobs_job WHERE id = %s", job_id)[0] == (2, 4)
    assert stack.query("SELECT count(*) FROM jobs_jobresult WHERE job_id = %s", job_id)[0][0] == 1
