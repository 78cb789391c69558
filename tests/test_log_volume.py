"""Logs say one line per event and nothing while idle (LOGGING in jobsite/settings.py)."""

import logging
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis
import requests

from tests.e2e.conftest import free_port, wait_until_healthy

ROOT = Path(__file__).resolve().parents[1]


def _env(tmp_path, **extra) -> dict:
    return {
        "PATH": "/usr/bin:/bin",
        "DJANGO_SETTINGS_MODULE": "jobsite.settings",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


def _run_for(args, env, seconds: float, ready=None) -> str:
    """Run a manage.py command, let it work for `seconds` after `ready()`, stop it with SIGINT; its output."""
    proc = subprocess.Popen(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    try:
        if ready:
            ready(proc)
        time.sleep(seconds)
    finally:
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=30)
    return output


def test_the_scheduler_logs_nothing_while_it_only_schedules(tmp_path, redis_url):
    sent = redis.Redis.from_url(redis_url)

    def three_recoveries_sent(proc):
        deadline = time.monotonic() + 60
        while sent.hlen("dramatiq:maintenance.msgs") < 3:
            assert proc.poll() is None and time.monotonic() < deadline, "the scheduler sent no recovery"
            time.sleep(0.2)

    env = _env(tmp_path, DEBUG="1", DRAMATIQ_BROKER_URL=redis_url, JOB_RECOVERY_INTERVAL_SECONDS="1")
    output = _run_for(["crontab"], env, seconds=0, ready=three_recoveries_sent)

    running = output.split("Scheduler started", 1)[1].split("Received SIGINT", 1)[0]
    assert [line for line in running.splitlines() if " INFO " in line] == []


def test_a_4xx_is_logged_once_and_a_2xx_once_under_the_development_server(tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"

    def ready(proc):
        wait_until_healthy(url, proc)
        assert requests.get(f"{url}/no-such-page", timeout=10).status_code == 404
        assert requests.get(f"{url}/health/", timeout=10).status_code == 200

    env = _env(tmp_path, DEBUG="1", DRAMATIQ_BROKER_URL="stub")
    output = _run_for(["runserver", f"127.0.0.1:{port}", "--noreload"], env, seconds=0.5, ready=ready)

    assert [line for line in output.splitlines() if "/no-such-page" in line] == [
        next(line for line in output.splitlines() if "WARNING django.request" in line)
    ]
    assert len([line for line in output.splitlines() if '"GET /health/ ' in line]) == 1


def test_the_crontab_heartbeat_actor_logs_nothing(caplog):
    from dramatiq_crontab.tasks import heartbeat

    caplog.set_level(logging.INFO)
    heartbeat.fn()
    assert [r for r in caplog.records if r.name.startswith("dramatiq_crontab")] == []
