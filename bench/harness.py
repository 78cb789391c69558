"""What the benchmarks share: a database of their own, CPU and memory readings, the anchor runs.

Benchmarks are run by hand, never in CI. They print their figures; none asserts a speed.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time
from contextlib import suppress
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psutil

ROOT = Path(__file__).resolve().parent.parent
# The PostgreSQL server the benchmarks create their databases on (never an existing database).
SERVER_URL = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/3")
ANCHOR_WORK = Path(os.environ.get("ANCHOR_WORK", "/tmp/anchorbench"))  # noqa: S108 - the anchors README's place


def database_url(name: str) -> str:
    parts = urlsplit(SERVER_URL)
    return urlunsplit(parts._replace(path=f"/{name}"))


def fresh_database(name: str) -> str:
    """Drop and create the benchmark's own database `name`; return its URL.

    Only databases whose name starts with `jobsite_bench` are ever dropped.
    """
    import psycopg

    if not name.startswith("jobsite_bench"):
        raise SystemExit(f"bench: refusing to drop {name!r}: benchmark databases are named jobsite_bench*")
    with psycopg.connect(SERVER_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return database_url(name)


def flush_redis(url: str) -> None:
    import redis

    redis.Redis.from_url(url).flushdb()


def setup_django(env: dict[str, str]) -> None:
    """Point this process at the benchmark's database and broker, then set Django up."""
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jobsite.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def base_env(database: str, broker: str) -> dict[str, str]:
    """The environment of the benchmark and of the processes it starts: production settings."""
    return {
        "DJANGO_SETTINGS_MODULE": "jobsite.settings",
        "DATABASE_URL": database,
        "DRAMATIQ_BROKER_URL": broker,
        "DEBUG": "0",
        "SECRET_KEY": "bench-secret-key-not-for-production",
        "JOBSITE_API_SECRET": "bench-api-secret",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "LOG_LEVEL": "WARNING",
        "THROTTLE_RATE_SERVICE": "",
    }


def migrate(env: dict[str, str]) -> None:
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env={**os.environ, **env}, check=True, timeout=600
    )


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def tree(*pids: int) -> list[psutil.Process]:
    """The processes and all their descendants."""
    procs = []
    for pid in pids:
        try:
            root = psutil.Process(pid)
            procs += [root, *root.children(recursive=True)]
        except psutil.Error:
            pass
    return procs


def tree_cpu_seconds(*pids: int) -> float:
    total = 0.0
    for proc in tree(*pids):
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total


def postgres_cpu_seconds() -> float:
    """CPU of every PostgreSQL server process (the backends serving the benchmark among them)."""
    total = 0.0
    for proc in psutil.process_iter(["name"]):
        if (proc.info["name"] or "").startswith("postgres"):
            try:
                times = proc.cpu_times()
                total += times.user + times.system
            except psutil.Error:
                pass
    return total


class PeakRss(threading.Thread):
    """Samples the summed RSS of process trees every 0.2 s and keeps the peak."""

    def __init__(self, *pids: int):
        super().__init__(daemon=True)
        self.pids = pids
        self.peak = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(0.2):
            rss = 0
            for proc in tree(*self.pids):
                with suppress(psutil.Error):
                    rss += proc.memory_info().rss
            self.peak = max(self.peak, rss)

    def stop(self) -> float:
        self.stopping.set()
        return self.peak / 2**20


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def run_anchor(case: str, variant: str, n: int, runs: int) -> dict:
    """Run an anchor of ../shared/anchors (copied to $ANCHOR_WORK/src, its venv in $ANCHOR_WORK/venv).

    Returns the harness's median figures, or {} when the anchors are not set up.
    """
    python = ANCHOR_WORK / "venv" / "bin" / "python"
    src = ANCHOR_WORK / "src"
    if not python.exists() or not (src / "harness.py").exists():
        print(f"bench: anchors not set up in {ANCHOR_WORK} (see ../shared/anchors/README.md); skipping {case}")
        return {}
    print(f"bench: anchor {case} {variant}, {n} jobs x {runs} runs ...", flush=True)
    done = subprocess.run(
        [str(python), "harness.py", case, variant, "--n", str(n), "--runs", str(runs)],
        cwd=src,
        env={**os.environ, "ANCHOR_WORK": str(ANCHOR_WORK)},
        capture_output=True,
        text=True,
        timeout=3600,
    )
    for line in done.stdout.splitlines():
        if line.startswith("MEDIAN"):
            return json.loads(line.split(" ", 3)[3])
    print(done.stdout[-2000:], done.stderr[-2000:])
    return {}


def sqlcounts(directory: str) -> dict[str, int]:
    """The statement counts every process wrote in `directory` (bench/sqlcount.py), summed."""
    total: dict[str, int] = {}
    for path in Path(directory).glob("*.json"):
        for key, value in json.loads(path.read_text()).items():
            total[key] = total.get(key, 0) + value
    return total


def wait_until(predicate, timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
