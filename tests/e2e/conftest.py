"""Real processes for end-to-end tests: gunicorn serving the API and a worker (`manage.py worker`)."""

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url() -> str:
    """A URL for the database this test run created, for child processes."""
    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{db['NAME']}"
    auth = quote(db["USER"] or "")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"])
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def child_env(**overrides) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "DRAMATIQ_", "TEST_", "PYTEST_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="jobsite.settings",
        SECRET_KEY="e2e-secret-key",
        JOBSITE_API_SECRET=settings.JOBSITE_API_SECRET,
        DEBUG="0",
        SECURE_COOKIES="0",
        ALLOWED_HOSTS="127.0.0.1,localhost",
        DB_BROKER_POLL_INTERVAL_MS="50",
        JOBSITE_STAGE_MODULES="tests.e2e.stages",
        WORKER_HEARTBEAT_SECONDS="1",
        MEDIA_ROOT=str(settings.MEDIA_ROOT),
        STATIC_ROOT=str(settings.STATIC_ROOT),
        PYTHONUNBUFFERED="1",
    )
    env.update(overrides)
    return env


def wait_until_healthy(url: str, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if requests.get(url + "/health", timeout=5).status_code == 200:
                return
        except (requests.ConnectionError, requests.Timeout):
            pass
        time.sleep(0.1)
    raise RuntimeError("server did not become healthy")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def web_server(env: dict, workers: int = 1, threads: int = 4):
    port = free_port()
    args = ["jobsite.wsgi:application", "-b", f"127.0.0.1:{port}", "-w", str(workers), "--threads", str(threads)]
    proc = subprocess.Popen(
        [BIN / "gunicorn", *args],
        cwd=ROOT,
        env=env,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_healthy(url, proc)
        yield url
    finally:
        stop(proc)


@contextmanager
def worker(env: dict, threads: int = 2):
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "worker", "--threads", str(threads)],
        cwd=ROOT,
        env=env,
    )
    try:
        yield proc
    finally:
        stop(proc)


@pytest.fixture
def service(broker_url, transactional_db, demo_pipelines):
    """Start gunicorn and a worker on the broker given by the module's `broker_url` fixture."""
    env = child_env(DATABASE_URL=database_url(), DRAMATIQ_BROKER_URL=broker_url)
    with web_server(env) as url, worker(env):
        yield url
