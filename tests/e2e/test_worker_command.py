"""`manage.py worker`: the worker in one process, on both brokers, started and stopped for real."""

import signal
import subprocess
import sys
import time

import pytest
import requests
from django.conf import settings

from jobs.models import Job, JobStatus
from jobs.selectors import live_workers
from pipelines.services import pipeline_ensure

from .conftest import ROOT, child_env, database_url, web_server

pytestmark = pytest.mark.e2e


@pytest.fixture(params=["db", "redis"])
def env(request, transactional_db):
    broker = request.getfixturevalue("redis_url") if request.param == "redis" else "db"
    return child_env(DATABASE_URL=database_url(), DRAMATIQ_BROKER_URL=broker, JOB_SHUTDOWN_GRACE_SECONDS="20")


@pytest.fixture
def api(env):
    """The API on the same database and broker, to submit jobs through."""
    with web_server(env, threads=2) as url:
        yield url


def start(env, *args):
    return subprocess.Popen(
        [sys.executable, "manage.py", "worker", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_for(predicate, proc, timeout=30, what="the condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc.poll() is not None:
            raise AssertionError(f"the worker exited ({proc.returncode}) before {what}:\n{proc.stdout.read()}")
        time.sleep(0.1)
    raise AssertionError(f"no {what} after {timeout} s")


def submit(api: str, pipeline: str, seconds: float) -> str:
    pipeline_ensure(
        name=pipeline, config={"stages": [{"name": "nap", "type": "sleep", "params": {"seconds": seconds}}]}
    )
    response = requests.post(
        f"{api}/api/v1/jobs/",
        json={"pipeline": pipeline, "input_data": {}},
        headers={"X-API-Secret": settings.JOBSITE_API_SECRET},
        timeout=10,
    )
    assert response.status_code == 201, response.text
    return response.json()["job_id"]


def status(job_id: str) -> str:
    return Job.objects.values_list("status", flat=True).get(pk=job_id)


def signalled_while_running(env, api, *, nap: float, signals: int) -> tuple[subprocess.Popen, str, str]:
    """Start a worker, have it run a job napping `nap` s, send `signals` SIGTERMs; return it, its output, the job."""
    proc = start(env, "--threads", "2")
    try:
        job = submit(api, f"worker-command-nap-{nap:g}", nap)
        wait_for(lambda: status(job) == JobStatus.PROCESSING, proc, what="a running job")
        for _ in range(signals):
            proc.send_signal(signal.SIGTERM)
            time.sleep(0.5)
        output, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
    return proc, output, job


def test_sigterm_lets_the_running_job_finish_then_the_worker_exits_0(env, api):
    proc, output, job = signalled_while_running(env, api, nap=2, signals=1)
    assert proc.returncode == 0, output
    assert status(job) == JobStatus.COMPLETED
    assert "Worker ready" in output and "2 threads" in output
    assert "Worker stopped." in output
    # It recorded its shutdown: it no longer counts as a live worker.
    assert not live_workers().exists()


def test_a_second_signal_exits_at_once_and_leaves_the_job_to_recovery(env, api):
    started = time.monotonic()
    proc, output, job = signalled_while_running(env, api, nap=60, signals=2)
    assert proc.returncode == 1, output
    assert time.monotonic() - started < 30  # long before the 60 s stage (or the 20 s grace) could end
    assert "Second signal" in output
    assert status(job) == JobStatus.PROCESSING  # still held: recovery hands it to another worker


def test_an_unknown_queue_is_refused_before_the_worker_starts(env):
    proc = start(env, "--queues", "jobs", "no-such-queue")
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert "No actor uses the queue(s) no-such-queue." in output
    assert "Worker ready" not in output


# Modules only the web side needs (the API's serializers and schema, YAML and highlighting that
# REST framework pulls in), or only a process that sends HTTP requests or signs deliveries: a
# worker loads them on first use, not at start (about 20 MB of its memory).
WEB_OR_ON_DEMAND = [
    "cryptography.fernet",
    "requests",
    "urllib3",
    "drf_spectacular.plumbing",
    "rest_framework.serializers",
    "rest_framework.pagination",
    "yaml",
    "pygments",
]


def test_a_starting_worker_does_not_import_what_only_the_web_or_an_outbound_request_needs():
    """`manage.py worker` as it is run, up to its queue check (after the actors are imported); then the modules."""
    script = (
        "import atexit, json, sys;"
        f"atexit.register(lambda: print(json.dumps([m for m in {WEB_OR_ON_DEMAND!r} if m in sys.modules])));"
        "from django.core.management import execute_from_command_line;"
        "execute_from_command_line(['manage.py', 'worker', '--queues', 'no-such-queue'])"
    )
    env = child_env(DATABASE_URL=database_url(), DRAMATIQ_BROKER_URL="db")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert "No actor uses the queue(s) no-such-queue." in done.stderr  # it got past the actors' import
    assert done.stdout.strip().splitlines()[-1] == "[]"
