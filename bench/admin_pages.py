"""Server time of every admin page of the jobs app over 1,000,000 jobs on PostgreSQL.

Run by hand, never in CI:

    .venv/bin/python bench/admin_pages.py [--database-url postgres://postgres@127.0.0.1:5432/jobsite_admin_bench]
                                          [--jobs 1000000] [--runs 30] [--only NAME ...]

It works in a database of its own: it creates the database when missing and
marks it, and refuses to touch an existing database without its mark (so it
never writes into one with data). It loads the jobs with COPY, in creation
order as a live table fills (statuses mixed as in production: mostly
completed, some failed with a few kinds of error, some waiting and running; 5
pipelines, 1,000 users, 12 worker processes, creation times over 90 days), adds
stage runs, events and audit rows for the newest jobs, VACUUM ANALYZEs, and
reuses the load when the count matches.

Each page is requested through Django's WSGI handler in-process, logged in as
an operator (staff, in the operator group): the time from the request entering
Django to the response leaving it, templates included. Prints p50 and p95 per
page; the goal is p95 under 300 ms for each admin page. The API list is timed
the same way for comparison.
"""

import argparse
import json
import os
import random
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode, urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/jobsite_admin_bench"
MARK_TABLE = "bench_admin_pages_mark"
GOAL_MS = 300
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
PIPELINES = ["ingest-orders", "render-report", "sync-crm", "text-analysis", "thumbnails"]
ACTIONS = ["import", "report", "sync", "reindex", "export", "notify"]
FIRST_NAMES = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy"]
ERRORS = [
    "Stage 'fetch' failed (attempt 3 of 3): HTTPError: 503 Service Unavailable for url "
    "https://api.example.com/orders/{n}",
    "Stage 'parse' failed (attempt 1 of 1): KeyError: 'customer_{n}'",
    "Worker lost: worker gone: {worker} silent for {s} s; 3 of 3 attempts spent",
    "Stage 'render' failed (attempt 2 of 2): StageTimeout: the stage ran over its 30 s limit",
    "Stage 'upload' failed (attempt 1 of 3): ConnectionRefusedError: [Errno 111] Connection refused",
]
COLUMNS = [
    "id", "pipeline_id", "pipeline_version", "pipeline_config", "status", "priority", "user_id", "username",
    "action", "input_data", "error_message", "progress", "attempts", "max_attempts", "owner_key", "webhook_url",
    "webhook_secret", "request_hash", "request_id", "traceparent", "debug_mode", "run_at", "locked_by", "locked_at",
    "heartbeat_at", "queued_at", "started_at", "completed_at", "duration_ms", "created_at", "updated_at",
]  # fmt: skip


def ensure_database(url: str) -> None:
    """Create the bench database and mark it; refuse an existing database without the mark."""
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')
            print(f"created database {name}")
    with psycopg.connect(url, autocommit=True) as conn:
        marked = conn.execute("SELECT to_regclass(%s)", [MARK_TABLE]).fetchone()[0]
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()[0]
        if not marked and tables:
            sys.exit(f"database {name} exists and was not made by this bench: refusing to write into it")
        conn.execute(f"CREATE TABLE IF NOT EXISTS {MARK_TABLE} (made_at timestamptz DEFAULT now())")


def setup_django(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ["DJANGO_SETTINGS_MODULE"] = "jobsite.settings"
    os.environ["DRAMATIQ_BROKER_URL"] = "db"
    os.environ["THROTTLE_RATE_SERVICE"] = ""
    os.environ.setdefault("JOBSITE_API_SECRET", "bench-secret")
    if not os.environ.get("SECRET_KEY"):
        os.environ["SECRET_KEY"] = "bench-only-" + uuid.uuid4().hex  # a scratch database, a throwaway key
    os.environ["ALLOWED_HOSTS"] = "127.0.0.1"
    os.environ["DEBUG"] = "0"
    os.environ["SECURE_COOKIES"] = "0"
    import django
    from django.conf import settings

    django.setup()
    # Pages link their static files by name; no collectstatic manifest is needed for that.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


def _pipelines():
    from pipelines.services import pipeline_ensure

    config = {
        "stages": [
            {"name": "fetch", "type": "echo"},
            {"name": "parse", "type": "echo"},
            {"name": "render", "type": "echo"},
        ]
    }
    return [pipeline_ensure(name=name, config=config)[0] for name in PIPELINES]


def _workers(rng) -> list[str]:
    return [f"worker-{n % 4}:{1000 + n}:{rng.getrandbits(24):06x}" for n in range(12)]


def load_jobs(total: int, seed: int = 11) -> None:
    """COPY `total` jobs into an empty jobs table, oldest first."""
    from django.db import connection

    from jobs.models import Job

    rng = random.Random(seed)
    pipelines = _pipelines()
    workers = _workers(rng)
    existing = Job.objects.count()
    if existing >= total:  # the history added later is a few more
        print(f"reusing {existing} jobs already loaded")
        return
    if existing:
        print(f"emptying the jobs table ({existing} rows)")
        with connection.cursor() as cursor:
            cursor.execute("TRUNCATE jobs_job CASCADE")
    users = [(uuid.UUID(int=rng.getrandbits(128), version=4), f"{rng.choice(FIRST_NAMES)}{n:03d}") for n in range(1000)]
    statuses, weights = zip(*STATUS_MIX, strict=True)
    now = datetime.now(UTC)
    offsets = sorted((rng.uniform(0, 90 * 86400) for _ in range(total)), reverse=True)
    configs = {p.pk: json.dumps(p.config) for p in pipelines}
    started = time.monotonic()
    connection.ensure_connection()
    raw = connection.connection
    batch = 100_000
    with raw.cursor() as cursor:
        for start in range(0, total, batch):
            with cursor.copy(f"COPY jobs_job ({', '.join(COLUMNS)}) FROM STDIN") as copy:
                for offset in offsets[start : start + batch]:
                    copy.write_row(_job_row(rng, now, offset, statuses, weights, pipelines, configs, users, workers))
            print(f"  loaded {min(start + batch, total)} jobs ({time.monotonic() - started:.0f} s)")
        raw.commit()
    print(f"loaded {total} jobs in {time.monotonic() - started:.0f} s")


def _job_row(rng, now, offset, statuses, weights, pipelines, configs, users, workers):
    status = rng.choices(statuses, weights)[0]
    if status in ("processing", "cancelling") and offset > 600:
        status = "completed"  # a worker thread holds a job for minutes, not months
    created = now - timedelta(seconds=offset)
    pipeline = rng.choice(pipelines)
    user, username = rng.choice(users)
    queued = created + timedelta(milliseconds=rng.randint(2, 40)) if status != "pending" else None
    started_at = queued + timedelta(milliseconds=rng.randint(5, 3000)) if status in STARTED else None
    duration = rng.randint(40, 30_000) if status in FINISHED and started_at else None
    done = started_at + timedelta(milliseconds=duration) if duration else None
    worker = f"{rng.choice(workers)}/Thread-{rng.randint(1, 8)}" if started_at else ""
    attempts = (rng.choice([1, 1, 1, 2, 3]) if status == "failed" else 1) if started_at else 0
    error = ""
    if status == "failed":
        error = rng.choice(ERRORS).format(n=rng.randint(1, 99_999), worker=rng.choice(workers), s=rng.randint(31, 400))
    run_at = created + timedelta(minutes=rng.randint(1, 600)) if status in ("scheduled", "retrying") else None
    return (
        uuid.UUID(int=rng.getrandbits(128), version=4), pipeline.pk, pipeline.version, configs[pipeline.pk], status,
        rng.randint(0, 10), user, username, rng.choice(ACTIONS), json.dumps({"order": rng.randint(1, 10**6)}), error,
        100.0 if status == "completed" else 0.0, attempts, 3, str(user), "", "", "", "", "", False, run_at, worker,
        started_at, started_at, queued, started_at, done, duration, created, done or created,
    )  # fmt: skip


def add_history(sample: int = 2000) -> str:
    """Stage runs, events and audit rows for the newest jobs; workers; return a job that retried twice."""
    from django.utils import timezone

    from audit.models import AuditLog
    from jobs.models import Job, JobEvent, JobStatus, StageRun, WorkerProcess

    now = timezone.now()
    rng = random.Random(3)
    WorkerProcess.objects.all().delete()
    for n, worker in enumerate(_workers(random.Random(11))):
        host, pid, _ = worker.split(":")
        WorkerProcess.objects.create(
            worker_id=worker, hostname=host, pid=int(pid), queues=["jobs", "jobs.high", "jobs.urgent", "maintenance"],
            threads=8, started_at=now - timedelta(days=2), last_seen_at=now - timedelta(seconds=2 if n < 10 else 600),
        )  # fmt: skip
    # A few of the newest waiting jobs are running now, on the live workers.
    live = [w for w in WorkerProcess.objects.filter(last_seen_at__gte=now - timedelta(minutes=1))]
    running = Job.objects.filter(status=JobStatus.QUEUED).order_by("-created_at")[: 2 * len(live)]
    for n, job in enumerate(running):
        Job.objects.filter(pk=job.pk).update(
            status=JobStatus.PROCESSING, locked_by=f"{live[n % len(live)].worker_id}/Thread-{n % 8 + 1}",
            locked_at=now - timedelta(seconds=n), heartbeat_at=now, started_at=now - timedelta(seconds=n), attempts=1,
        )  # fmt: skip
    if StageRun.objects.exists():
        existing = JobEvent.objects.filter(type="job.retrying").values_list("job_id", flat=True).first()
        return str(existing or retried_job().pk)
    runs, events, audits = [], [], []
    newest = list(Job.objects.filter(started_at__isnull=False).order_by("-created_at")[:sample])
    for job in newest:
        events.append(JobEvent(job=job, type="job.created", data={"status": "pending"}, created_at=job.created_at))
        events.append(
            JobEvent(
                job=job, type="job.started", data={"attempt": 1, "worker": job.locked_by}, created_at=job.started_at
            )
        )
        at = job.started_at
        for index, name in enumerate(["fetch", "parse", "render"]):
            took = rng.randint(5, 2000)
            finished = at + timedelta(milliseconds=took)
            runs.append(
                StageRun(
                    job=job, index=index, name=name, stage_type="echo", status="completed", attempt=1, job_attempt=1,
                    started_at=at, finished_at=finished, duration_ms=took, output={"ok": True, "stage": name},
                )
            )  # fmt: skip
            at = finished
        if job.status in (JobStatus.COMPLETED, JobStatus.FAILED):
            events.append(
                JobEvent(job=job, type=f"job.{job.status}", data={"attempt": 1}, created_at=job.completed_at or at)
            )
        audits.append(
            AuditLog(
                principal="service", principal_type="service", action="jobs.job.create", resource_type="job",
                resource_id=str(job.pk), success=True, status_code=201,
            )
        )  # fmt: skip
    StageRun.objects.bulk_create(runs, batch_size=5000)
    JobEvent.objects.bulk_create(events, batch_size=5000)
    AuditLog.objects.bulk_create(audits, batch_size=5000)
    print(f"added {len(runs)} stage runs, {len(events)} events, {len(audits)} audit rows")
    return str(retried_job().pk)


def retried_job():
    """A job whose first stage failed twice (a refused connection), retried after a backoff, done on attempt 3."""
    from django.utils import timezone

    from audit.models import AuditLog
    from jobs.models import Job, JobEvent, JobResult, StageRun

    pipeline = _pipelines()[0]
    workers = [f"{w}/Thread-{n}" for n, w in enumerate(_workers(random.Random(11))[:3], start=2)]
    base = timezone.now() - timedelta(minutes=7)
    job = Job.objects.create(
        pipeline=pipeline, pipeline_version=pipeline.version, pipeline_config=pipeline.config, status="completed",
        priority=5, username="grace042", action="import", input_data={"order": 81723, "source": "shop-eu"},
        attempts=3, max_attempts=3, progress=100.0, locked_by=workers[2], queued_at=base, owner_key="service",
        webhook_url="https://hooks.example.com/orders", webhook_secret="never-shown",
    )  # fmt: skip
    ms = lambda n: base + timedelta(milliseconds=n)  # noqa: E731
    Job.objects.filter(pk=job.pk).update(created_at=base, started_at=ms(31), completed_at=ms(9412), duration_ms=9381)
    events = [JobEvent(job=job, type="job.created", data={"status": "pending"}, created_at=base)]
    runs = []
    for attempt, start in ((1, 31), (2, 2243), (3, 6518)):
        events.append(JobEvent(job=job, type="job.started", data={"attempt": attempt, "worker": workers[attempt - 1]},
                               created_at=ms(start)))  # fmt: skip
        failed = attempt < 3
        runs.append(StageRun(job=job, index=0, name="fetch", stage_type="http_request", attempt=attempt,
                             job_attempt=attempt, status="failed" if failed else "completed", started_at=ms(start + 4),
                             finished_at=ms(start + 1206 if failed else start + 812),
                             duration_ms=1202 if failed else 808,
                             output=None if failed else {"status_code": 200, "body": {"order": 81723, "lines": 3}},
                             error="ConnectionRefusedError: [Errno 111] Connection refused" if failed else "",
                             traceback="Traceback (most recent call last):\n  File \"pipelines/stages.py\", line 231, "
                                       "in http_request\n    response = session.request(...)\nConnectionRefusedError: "
                                       "[Errno 111] Connection refused" if failed else ""))  # fmt: skip
        if failed:
            events.append(JobEvent(job=job, type="job.retrying", created_at=ms(start + 1210), data={
                "attempt": attempt, "stage": "fetch", "error": "ConnectionRefusedError: [Errno 111] Connection refused",
                "run_at": ms(start + 2200).isoformat(), "delay_ms": 990 if attempt == 1 else 2870}))  # fmt: skip
    for index, (name, took) in enumerate((("parse", 41), ("render", 1893)), start=1):
        start = 6518 + 816 + (0 if index == 1 else 45)
        runs.append(StageRun(job=job, index=index, name=name, stage_type="transform", attempt=1, job_attempt=3,
                             status="completed", started_at=ms(start), finished_at=ms(start + took), duration_ms=took,
                             output={"stage": name}))  # fmt: skip
    events.append(
        JobEvent(job=job, type="job.completed", data={"attempt": 3, "duration_ms": 9381}, created_at=ms(9412))
    )
    JobEvent.objects.bulk_create(events)
    StageRun.objects.bulk_create(runs)
    JobResult.objects.create(job=job, result={"order": 81723, "lines": 3, "report": "https://files.example.com/r/81723"},
                             size_bytes=78, processing_time_ms=9381)  # fmt: skip
    AuditLog.objects.create(principal="service", principal_type="service", action="jobs.job.create",
                            resource_type="job", resource_id=str(job.pk), success=True, status_code=201)  # fmt: skip
    return job


def vacuum() -> None:
    from django.db import connection

    started = time.monotonic()
    with connection.cursor() as cursor:
        for table in ("jobs_job", "jobs_stagerun", "jobs_jobevent", "audit_auditlog"):
            cursor.execute(f"VACUUM ANALYZE {table}")
    print(f"vacuum analyze in {time.monotonic() - started:.0f} s")


def operator_cookie() -> str:
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.auth.models import Group
    from django.contrib.sessions.backends.db import SessionStore

    from accounts.models import User

    user, _ = User.objects.get_or_create(username="bench-operator", defaults={"is_staff": True})
    user.groups.add(Group.objects.get(name="operator"))
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.save()
    return f"{settings.SESSION_COOKIE_NAME}={session.session_key}"


def pages(job_id: str) -> dict[str, str]:
    """Every admin page of the jobs app to time, by name."""
    from jobs.admin import JobAdmin
    from jobs.models import Job, WorkerProcess

    sample = Job.objects.filter(status="failed").order_by("-created_at").values("pk", "username", "action").first()
    worker = WorkerProcess.objects.order_by("worker_id").values_list("worker_id", flat=True).first()
    # `o=N` counts the action checkbox column, first for an operator.
    column = {name: index + 1 for index, name in enumerate(JobAdmin.list_display)}
    jobs = "/admin/jobs/job/"
    listed = {
        "default list": "",
        "status=running": "status=running",
        "status=failed": "status=failed",
        "status=completed": "status=completed",
        "status=active": "status=active",
        "status=cancelling (exact)": "status=cancelling",
        "created=today": "created=today",
        "created=7d": "created=7d",
        "created=30d": "created=30d",
        "pipeline": f"pipeline={PIPELINES[2]}",
        "username": f"username={sample['username']}",
        "action": f"action={ACTIONS[3]}",
        "worker": urlencode({"worker": worker}),
        "has_error=yes": "has_error=yes",
        "failed + pipeline + 7d": f"status=failed&pipeline={PIPELINES[0]}&created=7d",
        "search: full id": urlencode({"q": str(sample["pk"])}),
        "search: id prefix (8)": urlencode({"q": str(sample["pk"])[:8]}),
        "search: username prefix": urlencode({"q": sample["username"][:-1]}),
        "search: action prefix": urlencode({"q": ACTIONS[1][:4]}),
        "search: no match": urlencode({"q": "zzz-nobody"}),
        "page 2000": "p=2000",
        "page 2000, status=completed": "status=completed&p=2000",
        "per_page=500": "per_page=500",
        "sort created asc": f"o={column['created']}",
        "sort duration desc": f"o=-{column['duration']}",
        "sort duration asc": f"o={column['duration']}",
        "sort priority desc": f"o=-{column['priority_shown']}",
        "sort priority asc": f"o={column['priority_shown']}",
    }
    result = {"dashboard": "/admin/", "dashboard, no snapshot (computes it)": "/admin/?cold"}
    result.update({f"list: {name}": f"{jobs}?{query}" if query else jobs for name, query in listed.items()})
    result.update(
        {
            "job page (ledger)": f"{jobs}{job_id}/change/",
            "job page (failed)": f"{jobs}{sample['pk']}/change/",
            "workers": "/admin/jobs/workerprocess/",
            "failure triage (24h)": f"{jobs}failures/",
            "failure triage (7d)": f"{jobs}failures/?window=7d",
            "failure triage (30d)": f"{jobs}failures/?window=30d",
            "dead letters": "/admin/dead-letters/",
            "bulk operations": "/admin/jobs/bulkoperation/",
            "stage runs": "/admin/jobs/stagerun/",
            "API list (comparison)": "/api/v1/jobs/",
            "API list status=failed (comparison)": "/api/v1/jobs/?status=failed",
        }
    )
    return result


def time_page(wsgi, path: str, cookie: str, runs: int) -> list[float]:
    from django.conf import settings
    from django.test import RequestFactory

    environ = (
        RequestFactory()
        .get(path, HTTP_HOST="127.0.0.1", HTTP_COOKIE=cookie, HTTP_X_API_SECRET=settings.JOBSITE_API_SECRET)
        .environ
    )
    from jobs.models import DashboardSnapshot

    cold = path.endswith("?cold")
    if cold:
        path = path.removesuffix("?cold")
        environ = RequestFactory().get(path, HTTP_HOST="127.0.0.1", HTTP_COOKIE=cookie).environ
    timings = []
    for _ in range(runs + 3):
        if cold:
            DashboardSnapshot.objects.all().delete()  # as before the scheduler first ran
        statuses: list[str] = []
        started = time.perf_counter()
        response = wsgi(dict(environ), lambda status, headers, seen=statuses: seen.append(status))
        body = b"".join(response)
        elapsed = time.perf_counter() - started
        response.close()
        if statuses != ["200 OK"]:
            raise SystemExit(f"{path}: {statuses} {body[:500]!r}")
        timings.append(elapsed)
    return timings[3:]  # the first runs warm the caches


SCREENSHOTS = {
    "admin-dashboard.png": ("/admin/", True),
    "admin-job-list.png": ("/admin/jobs/job/", False),
    "admin-job-ledger.png": ("/admin/jobs/job/{job_id}/change/", True),
    "admin-workers.png": ("/admin/jobs/workerprocess/", False),
}


def screenshots(directory: Path, database_url: str, job_id: str) -> None:
    """PNGs of the dashboard, the job list, a job's ledger and the workers page, served by gunicorn from this data."""
    import socket
    import subprocess

    import requests
    from playwright.sync_api import sync_playwright

    from accounts.models import User

    password = uuid.uuid4().hex
    user = User.objects.get(username="bench-operator")
    user.set_password(password)
    user.save()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        **os.environ, "DATABASE_URL": database_url, "DJANGO_SETTINGS_MODULE": "jobsite.settings", "DEBUG": "1",
        "DRAMATIQ_BROKER_URL": "db", "ALLOWED_HOSTS": "127.0.0.1",
    }  # fmt: skip
    root = Path(__file__).resolve().parents[1]
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "gunicorn"), "jobsite.wsgi:application", "-b", f"127.0.0.1:{port}"],
        cwd=root,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                requests.get(f"{url}/health", timeout=2)
                break
            except requests.ConnectionError:
                time.sleep(0.2)
        directory.mkdir(parents=True, exist_ok=True)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path="/usr/bin/chromium",
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
            )
            page = browser.new_page(viewport={"width": 1400, "height": 900}, base_url=url)
            page.goto("/admin/login/?next=/admin/")
            page.fill("#id_username", "bench-operator")
            page.fill("#id_password", password)
            page.click("input[type=submit]")
            page.wait_for_url(f"{url}/admin/")
            for name, (path, full_page) in SCREENSHOTS.items():
                page.goto(path.format(job_id=job_id))
                page.wait_for_load_state("networkidle")
                page.screenshot(path=str(directory / name), full_page=full_page)
                print(f"saved {directory / name}")
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=20)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=30, help="timings per page (at least 2: a p95 needs two)")
    parser.add_argument("--only", nargs="*", help="time only the pages whose name contains one of these")
    parser.add_argument("--screenshots", type=Path, help="save PNGs of the main admin pages in this folder, no timing")
    args = parser.parse_args()
    if args.runs < 2:
        parser.error("--runs must be at least 2: a p95 needs two timings")

    ensure_database(args.database_url)
    setup_django(args.database_url)
    from django.conf import settings
    from django.core.handlers.wsgi import WSGIHandler
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    load_jobs(args.jobs)
    job_id = add_history()
    vacuum()
    # The audit middleware writes a row per API request; measure the pages themselves.
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if m != "audit.middleware.AuditMiddleware"]
    cookie = operator_cookie()
    if args.screenshots:
        screenshots(args.screenshots, args.database_url, job_id)
        return
    wsgi = WSGIHandler()
    print(f"\n{args.jobs:,} jobs; {args.runs} runs per page; server time in ms")
    print(f"{'page':<44}{'p50':>8}{'p95':>8}")
    from jobs.snapshots import jobs_dashboard_snapshot

    jobs_dashboard_snapshot()  # what the scheduler does every minute
    slow = []
    for name, path in pages(job_id).items():
        if args.only and not any(word in name for word in args.only):
            continue
        timings = sorted(t * 1000 for t in time_page(wsgi, path, cookie, args.runs))
        p95 = statistics.quantiles(timings, n=20)[-1]
        over = p95 >= GOAL_MS and "comparison" not in name and "no snapshot" not in name
        print(f"{name:<44}{statistics.median(timings):>8.1f}{p95:>8.1f}" + (f"  over {GOAL_MS} ms" if over else ""))
        if over:
            slow.append(name)
    if slow:
        print(f"\n{len(slow)} page(s) over the {GOAL_MS} ms goal: {', '.join(slow)}")


if __name__ == "__main__":
    main()
