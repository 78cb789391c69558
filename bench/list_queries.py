"""Server-side time of the common job-list queries over 1,000,000 jobs on PostgreSQL.

Run by hand, never in CI:

    .venv/bin/python bench/list_queries.py [--database-url postgres://postgres@127.0.0.1:5432/jobsite_bench_list]
                                           [--jobs 1000000] [--runs 50] [--reuse]

It works in a database of its own: by default it creates `jobsite_bench_list`
(marked as the bench's with a comment), migrates it and loads the jobs with
COPY (a mix of statuses, 1,000 users, 5 pipelines and creation dates over 90
days). A database that already has tables is refused, so that pointing it at
a real one by mistake changes nothing; `--reuse` uses such a database's jobs
when their count matches `--jobs`, and reloads them only in a database the
bench created itself. It then times `GET /api/v1/jobs/?...` through Django's
WSGI handler in-process: the time from the request entering Django to the
response leaving it, so the figures include the serializer, pagination and its
bounded count. Prints p50 and p95 per query. Goal: p95 under 50 ms for each.
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

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/jobsite_bench_list"
BENCH_MARK = "jobsite bench scratch database (bench/list_queries.py)"
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


class Refused(SystemExit):
    """The database is not one the bench may load into."""

    def __init__(self, message: str):
        super().__init__(f"list_queries: {message}")


def prepare_database(url: str, *, reuse: bool) -> bool:
    """Make sure the bench may work in `url`'s database; return whether the bench created it.

    A missing database is created and marked as the bench's. One with tables
    is refused unless `reuse`.
    """
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if not name:
        raise Refused("the database URL names no database.")
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        row = conn.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s", [name]
        ).fetchone()
        if row is None:
            conn.execute(f'CREATE DATABASE "{name}"')
            conn.execute(f"COMMENT ON DATABASE \"{name}\" IS '{BENCH_MARK}'")
            print(f"created database {name}")
            return True
        made_by_bench = row[0] == BENCH_MARK
    with psycopg.connect(url) as conn:
        tables = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"
        ).fetchone()[0]
    if tables and not reuse:
        raise Refused(
            f"database {name} is not empty ({tables} tables); the bench loads only into a database of its own. "
            "Name a new one with --database-url, or pass --reuse to use the jobs already in it."
        )
    return made_by_bench


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


def load_jobs(total: int, *, may_empty: bool, seed: int = 7) -> list[uuid.UUID]:
    """COPY `total` jobs into the jobs table unless it holds exactly that many; return the users' ids.

    A table holding another number of jobs is emptied first when `may_empty`
    (the bench's own database), and refused otherwise.
    """
    from django.db import connection

    from jobs.models import Job
    from pipelines.services import pipeline_ensure

    rng = random.Random(seed)
    users = [uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(1000)]
    existing = Job.objects.count()
    if existing == total:
        print(f"reusing {existing} jobs already loaded")
        return users
    if existing and not may_empty:
        raise Refused(f"the database holds {existing} jobs, not {total}, and the bench did not create it.")
    pipelines = [
        pipeline_ensure(name=f"bench-list-{n}", config={"stages": [{"name": "echo", "type": "echo"}]})[0]
        for n in range(5)
    ]
    if existing:
        print(f"emptying the bench's jobs table ({existing} rows)")
        with connection.cursor() as cursor:
            cursor.execute("TRUNCATE jobs_job CASCADE")
    statuses, weights = zip(*STATUS_MIX, strict=True)
    now = datetime.now(UTC)
    # Every column of the model, so that the load follows the schema: the bench
    # sets what the lists read, every other column gets its field's default.
    fields = Job._meta.concrete_fields
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    defaults = {f.attname: f.get_default() for f in fields}
    started = time.monotonic()
    connection.ensure_connection()
    batch = 100_000
    with connection.connection.cursor() as cursor:
        for offset in range(0, total, batch):
            with cursor.copy(f"COPY jobs_job ({columns}) FROM STDIN") as copy:
                for _ in range(min(batch, total - offset)):
                    status = rng.choices(statuses, weights)[0]
                    created = now - timedelta(seconds=rng.uniform(0, 90 * 86400))
                    started_at = created + timedelta(seconds=rng.uniform(0.05, 5)) if status in STARTED else None
                    duration = rng.randint(20, 30_000) if status in FINISHED and started_at else None
                    done = started_at + timedelta(milliseconds=duration) if duration else None
                    user = rng.choice(users)
                    pipeline = rng.choice(pipelines)
                    row = {
                        **defaults,
                        "id": uuid.UUID(int=rng.getrandbits(128), version=4),
                        "pipeline_id": pipeline.pk,
                        "pipeline_version": pipeline.version,
                        "pipeline_config": {},
                        "status": status,
                        "priority": rng.randint(0, 10),
                        "user_id": user,
                        "username": f"user-{user.hex[:6]}",
                        "action": rng.choice(["import", "report", "sync"]),
                        "input_data": {},
                        "error_message": "boom" if status == "failed" else "",
                        "progress": 100.0 if status == "completed" else 0.0,
                        "attempts": 1,
                        "owner_key": str(user),
                        "started_at": started_at,
                        "completed_at": done,
                        "duration_ms": duration,
                        "created_at": created,
                        "updated_at": done or created,
                    }
                    copy.write_row([f.get_db_prep_save(row[f.attname], connection) for f in fields])
            print(f"  loaded {offset + min(batch, total - offset)} jobs ({time.monotonic() - started:.0f} s)")
        connection.connection.commit()
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
    parser.add_argument("--runs", type=int, default=50, help="timings per page (at least 2: a p95 needs two)")
    parser.add_argument(
        "--reuse", action="store_true", help="Use a database that already has tables (its jobs, if they number --jobs)."
    )
    args = parser.parse_args()
    if args.runs < 2:
        parser.error("--runs must be at least 2: a p95 needs two timings")

    made_by_bench = prepare_database(args.database_url, reuse=args.reuse)
    setup_django(args.database_url)
    from django.conf import settings
    from django.core.handlers.wsgi import WSGIHandler
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    users = load_jobs(args.jobs, may_empty=made_by_bench)
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
