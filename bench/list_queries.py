"""Server-side time of the common job-list queries over 1,000,000 jobs on PostgreSQL.

Run by hand, never in CI, against a scratch database (created when missing):

    .venv/bin/python bench/list_queries.py [--database-url postgres://postgres@127.0.0.1:5432/jobsite_bench]
                                           [--jobs 1000000] [--runs 50]

It loads the jobs with COPY (a mix of statuses, 1,000 users, 5 pipelines and
creation dates over 90 days; reused by later runs when the count matches),
then times `GET /api/v1/jobs/?...` through Django's WSGI handler in-process:
the time from the request entering Django to the response leaving it, so the
figures include the serializer, pagination and its bounded count. Prints p50
and p95 per query. Goal: p95 under 50 ms for each.
"""

import argparse
import os
import random
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/jobsite_bench"
STATUS_MIX = [
    ("completed", 0.80),
    ("failed", 0.08),
    ("cancelled", 0.02),
    ("queued", 0.04),
    ("processing", 0.02),
    ("pending", 0.01),
    ("scheduled", 0.01),
    ("retrying", 0.01),
    ("cancelling", 0.01),
]
FINISHED = {"completed", "failed", "cancelled"}
STARTED = FINISHED | {"processing", "cancelling", "retrying"}


def ensure_database(url: str) -> None:
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
            print(f"created database {name}")


def setup_django(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jobsite.settings")
    os.environ["DRAMATIQ_BROKER_URL"] = "stub"
    os.environ.setdefault("THROTTLE_RATE_SERVICE", "")
    os.environ.setdefault("JOBSITE_API_SECRET", "bench-secret")
    if not os.environ.get("SECRET_KEY"):
        os.environ["SECRET_KEY"] = "bench-only-" + uuid.uuid4().hex  # a scratch database, a throwaway key
    os.environ.setdefault("ALLOWED_HOSTS", "127.0.0.1")
    import django

    django.setup()


def load_jobs(total: int, seed: int = 7) -> list[uuid.UUID]:
    """COPY `total` jobs into an empty jobs table; return the users' ids."""
    from django.db import connection

    from jobs.models import Job
    from pipelines.services import pipeline_ensure

    rng = random.Random(seed)
    users = [uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(1000)]
    pipelines = [
        pipeline_ensure(name=f"bench-list-{n}", config={"stages": [{"name": "echo", "type": "echo"}]})[0]
        for n in range(5)
    ]
    existing = Job.objects.count()
    if existing == total:
        print(f"reusing {existing} jobs already loaded")
        return users
    if existing:
        print(f"emptying the jobs table ({existing} rows)")
        with connection.cursor() as cursor:
            cursor.execute("TRUNCATE jobs_job CASCADE")
    statuses, weights = zip(*STATUS_MIX, strict=True)
    now = datetime.now(UTC)
    columns = [
        "id", "pipeline_id", "pipeline_version", "pipeline_config", "status", "priority", "user_id", "username",
        "action", "input_data", "error_message", "progress", "attempts", "max_attempts", "owner_key",
        "webhook_url", "webhook_secret", "resume_from_checkpoint", "locked_by", "queued_at", "started_at",
        "completed_at", "duration_ms", "created_at", "updated_at",
    ]  # fmt: skip
    started = time.monotonic()
    raw = connection.connection if connection.connection else (connection.ensure_connection() or connection.connection)
    batch = 100_000
    with raw.cursor() as cursor:
        for offset in range(0, total, batch):
            with cursor.copy(f"COPY jobs_job ({', '.join(columns)}) FROM STDIN") as copy:
                for _ in range(min(batch, total - offset)):
                    status = rng.choices(statuses, weights)[0]
                    created = now - timedelta(seconds=rng.uniform(0, 90 * 86400))
                    started_at = created + timedelta(seconds=rng.uniform(0.05, 5)) if status in STARTED else None
                    duration = rng.randint(20, 30_000) if status in FINISHED and started_at else None
                    done = started_at + timedelta(milliseconds=duration) if duration else None
                    user = rng.choice(users)
                    copy.write_row(
                        (
                            uuid.UUID(int=rng.getrandbits(128), version=4), rng.choice(pipelines).pk, 1, "{}", status,
                            rng.randint(0, 10), user, f"user-{user.hex[:6]}", rng.choice(["import", "report", "sync"]),
                            "{}", "boom" if status == "failed" else "", 100.0 if status == "completed" else 0.0,
                            1, 3, str(user), "", "", True, "", created, started_at, done, duration, created,
                            done or created,
                        )
                    )  # fmt: skip
            print(f"  loaded {offset + min(batch, total - offset)} jobs ({time.monotonic() - started:.0f} s)")
        raw.commit()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE jobs_job")
    print(f"loaded {total} jobs in {time.monotonic() - started:.0f} s")
    return users


def time_query(wsgi, query: str, runs: int) -> list[float]:
    from django.test import RequestFactory

    environ = (
        RequestFactory().get(f"/api/v1/jobs/?{query}", HTTP_HOST="127.0.0.1", HTTP_X_API_SECRET="bench-secret").environ
    )
    timings = []
    for _ in range(runs + 3):
        statuses: list[str] = []
        started = time.perf_counter()
        response = wsgi(dict(environ), lambda status, headers, seen=statuses: seen.append(status))
        elapsed = time.perf_counter() - started
        body = b"".join(response)
        response.close()
        assert statuses == ["200 OK"], (statuses, body[:300])
        timings.append(elapsed)
    return timings[3:]  # the first runs warm the caches


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()

    ensure_database(args.database_url)
    setup_django(args.database_url)
    from django.conf import settings
    from django.core.handlers.wsgi import WSGIHandler
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    users = load_jobs(args.jobs)
    # The audit middleware writes a row per request; measure the list itself.
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if m != "audit.middleware.AuditMiddleware"]
    wsgi = WSGIHandler()
    queries = {
        "no filter": "",
        "status=running": "status=running",
        "status=failed&user_id": f"status=failed&user_id={users[0]}",
        "limit_results=Today": "limit_results=Today",
        "offset=10000": "offset=10000",
    }
    print(f"\n{args.jobs} jobs; {args.runs} runs per query; server time in ms")
    print(f"{'query':<26}{'p50':>8}{'p95':>8}")
    for name, query in queries.items():
        timings = sorted(t * 1000 for t in time_query(wsgi, query, args.runs))
        p95 = statistics.quantiles(timings, n=20)[-1]
        print(
            f"{name:<26}{statistics.median(timings):>8.1f}{p95:>8.1f}" + ("" if p95 < 50 else "  over the 50 ms goal")
        )


if __name__ == "__main__":
    main()
