"""A process's database connections stay within its budget, whatever the traffic."""

import subprocess
import sys
import time
import uuid

import psycopg
import pytest
import requests
from django.db import connection

from jobs.models import Job, JobStatus

from .conftest import ROOT, child_env, database_url, free_port, stop, wait_until_healthy, web_server, worker

pytestmark = pytest.mark.e2e


def _connections(dsn_url: str, application_name: str) -> int:
    with psycopg.connect(dsn_url, autocommit=True) as conn:
        return conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [application_name]
        ).fetchone()[0]


@pytest.fixture
def postgres_only(transactional_db):
    if connection.vendor != "postgresql":
        pytest.skip("connection budgets are about PostgreSQL")


def test_the_development_server_does_not_keep_a_connection_per_request_thread(postgres_only, demo_pipelines):
    name = f"jobsite-dev-{uuid.uuid4().hex[:8]}"
    env = child_env(DATABASE_URL=f"{database_url()}?application_name={name}", DEBUG="1")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"], cwd=ROOT, env=env
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, proc)
        for _ in range(30):  # each request on a thread of its own
            response = requests.get(
                f"{url}/api/v1/jobs/", headers={"X-API-Secret": env["JOBSITE_API_SECRET"]}, timeout=10
            )
            assert response.status_code == 200
        time.sleep(0.5)
        assert _connections(database_url(), name) <= 2
    finally:
        stop(proc)


def test_a_pooled_web_process_never_opens_more_connections_than_its_pool(postgres_only, demo_pipelines):
    name = f"jobsite-pool-{uuid.uuid4().hex[:8]}"
    env = child_env(DATABASE_URL=f"{database_url()}?application_name={name}", DATABASE_POOL_MAX_SIZE="2")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "jobsite.wsgi:application", "-b", f"127.0.0.1:{port}", "-w", "1",
         "--threads", "8"],
        cwd=ROOT, env=env,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, proc)
        from concurrent.futures import ThreadPoolExecutor

        def submit(n):
            return requests.post(
                f"{url}/api/v1/jobs/",
                json={"pipeline": "sample_task", "input_data": {"n": n}},
                headers={"X-API-Secret": env["JOBSITE_API_SECRET"]},
                timeout=30,
            ).status_code

        with ThreadPoolExecutor(8) as pool:
            peak = 0
            futures = [pool.submit(submit, n) for n in range(80)]
            while not all(f.done() for f in futures):
                peak = max(peak, _connections(database_url(), name))
                time.sleep(0.02)
        assert {f.result() for f in futures} == {201}
        assert 1 <= peak <= 2
    finally:
        stop(proc)


@pytest.mark.parametrize(("broker", "fixed"), [("db", 8), ("redis", 2)])
def test_a_busy_worker_holds_its_threads_plus_its_fixed_connections_and_no_more(
    postgres_only, demo_pipelines, request, broker, fixed
):
    """The README's budget, however many messages the worker acks: threads + 2 on Redis; threads + 8 on the
    database broker, whose consumers (one per queue, six) and listener hold a connection each."""
    broker_url = request.getfixturevalue("redis_url") if broker == "redis" else "db"
    name = f"jobsite-worker-{uuid.uuid4().hex[:8]}"
    threads = 4
    web_env = child_env(DATABASE_URL=database_url(), DRAMATIQ_BROKER_URL=broker_url)
    worker_env = child_env(DATABASE_URL=f"{database_url()}?application_name={name}", DRAMATIQ_BROKER_URL=broker_url)
    with web_server(web_env) as url, worker(worker_env, threads=threads):
        from concurrent.futures import ThreadPoolExecutor

        def submit(n):
            response = requests.post(
                f"{url}/api/v1/jobs/",
                json={"pipeline": "sample_task", "input_data": {"n": n}},
                headers={"X-API-Secret": web_env["JOBSITE_API_SECRET"]},
                timeout=30,
            )
            assert response.status_code == 201, response.text
            return response.json()["job_id"]

        with ThreadPoolExecutor(8) as pool:
            ids = list(pool.map(submit, range(60)))
        peak, deadline = 0, time.monotonic() + 60
        while time.monotonic() < deadline:
            peak = max(peak, _connections(database_url(), name))
            if Job.objects.filter(pk__in=ids, status=JobStatus.COMPLETED).count() == len(ids):
                break
            time.sleep(0.05)
        assert Job.objects.filter(pk__in=ids, status=JobStatus.COMPLETED).count() == len(ids)
    assert threads < peak <= threads + fixed, peak
