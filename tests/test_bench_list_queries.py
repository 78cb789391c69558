"""bench/list_queries.py runs at HEAD, in a database of its own, and never empties someone else's."""

import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from django.db import connection

from jobs.models import Job
from tests.conftest import require_service
from tests.e2e.conftest import database_url
from tests.factories import JobFactory

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def server_url(transactional_db):
    """The test database's URL (PostgreSQL only: the bench loads with COPY)."""
    if connection.vendor != "postgresql":
        require_service("postgres", "the bench needs PostgreSQL (DATABASE_URL)")
    return database_url()


def bench(url: str, *args: str) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "bench/list_queries.py", "--database-url", url, "--runs", "2", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


@pytest.fixture
def scratch_url(server_url):
    """A database name nobody uses; dropped afterwards."""
    name = f"jobsite_bench_test_{uuid.uuid4().hex[:8]}"
    yield urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))
    with psycopg.connect(urlunsplit(urlsplit(server_url)._replace(path="/postgres")), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_it_creates_its_database_loads_jobs_and_times_every_list(scratch_url):
    result = bench(scratch_url, "--jobs", "500")
    assert result.returncode == 0, result.stderr
    assert "created database jobsite_bench_test_" in result.stdout
    assert "loaded 500 jobs" in result.stdout
    for query in ("no filter", "status=running", "status=failed&user_id", "limit_results=Today", "offset=10000"):
        assert any(line.startswith(query + " ") for line in result.stdout.splitlines()), query
    with psycopg.connect(scratch_url) as conn:
        assert conn.execute("SELECT count(*) FROM jobs_job").fetchone()[0] == 500

    # Its own database again: refused without --reuse, reused (or reloaded at another size) with it.
    assert bench(scratch_url, "--jobs", "500").returncode != 0
    again = bench(scratch_url, "--jobs", "500", "--reuse")
    assert again.returncode == 0, again.stderr
    assert "reusing 500 jobs" in again.stdout
    resized = bench(scratch_url, "--jobs", "300", "--reuse")
    assert resized.returncode == 0, resized.stderr
    with psycopg.connect(scratch_url) as conn:
        assert conn.execute("SELECT count(*) FROM jobs_job").fetchone()[0] == 300


def test_it_refuses_a_database_that_is_not_empty_and_changes_nothing(server_url):
    job = JobFactory()

    refused = bench(server_url, "--jobs", "5")
    assert refused.returncode != 0
    assert "is not empty" in refused.stderr
    assert "--reuse" in refused.stderr

    not_its_own = bench(server_url, "--jobs", "5", "--reuse")
    assert not_its_own.returncode != 0
    assert "the bench did not create it" in not_its_own.stderr

    assert list(Job.objects.values_list("pk", flat=True)) == [job.pk]
