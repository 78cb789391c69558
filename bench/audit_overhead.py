"""Request latency of GET /api/v1/jobs/ with the audit middleware on and off.

Run by hand, never in CI:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test .venv/bin/python bench/audit_overhead.py

It drives Django's WSGI handler in-process with the configured database,
alternating rounds with and without `audit.middleware.AuditMiddleware`. The
latency is the time until the handler returns the response, which is what a
client waits for; the audit row is written when the response is closed, after
that, and is timed separately. Goal: the median with audit is under 110% of
the median without.
"""

import argparse
import io
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jobsite.settings")
os.environ.setdefault("DRAMATIQ_BROKER_URL", "stub")
if not os.environ.get("SECRET_KEY"):
    # A benchmark of a local database: a development key is fine here.
    os.environ.setdefault("DEBUG", "1")
os.environ.setdefault("THROTTLE_RATE_USER", "1000000/minute")

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.core.handlers.wsgi import WSGIHandler  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import RequestFactory  # noqa: E402
from rest_framework_simplejwt.tokens import AccessToken  # noqa: E402

AUDIT = "audit.middleware.AuditMiddleware"


def handler(with_audit: bool) -> WSGIHandler:
    middleware = list(settings.MIDDLEWARE)
    if not with_audit:
        middleware.remove(AUDIT)
    settings.MIDDLEWARE = middleware
    return WSGIHandler()


def measure(wsgi: WSGIHandler, environ: dict, n: int) -> tuple[list[float], list[float]]:
    served, closed = [], []
    for _ in range(n):
        env = dict(environ)
        started = time.perf_counter()
        statuses: list[str] = []
        response = wsgi(env, lambda status, headers, seen=statuses: seen.append(status))
        assert statuses == ["200 OK"], statuses
        served.append(time.perf_counter() - started)
        b"".join(response)
        before_close = time.perf_counter()
        response.close()
        closed.append(time.perf_counter() - before_close)
    return served, closed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per variant (default 2000)")
    parser.add_argument("--rounds", type=int, default=10, help="alternating rounds (default 10)")
    parser.add_argument("--jobs", type=int, default=200, help="jobs owned by the benchmark user (default 200)")
    args = parser.parse_args()

    call_command("migrate", verbosity=0)
    call_command("install_demo_pipelines", verbosity=0, stdout=io.StringIO())
    from django.contrib.auth.models import Group

    from audit.models import AuditLog
    from jobs.models import Job
    from pipelines.models import Pipeline
    from tests.factories import UserFactory

    user = UserFactory(username=f"bench-{uuid.uuid4().hex[:8]}")
    user.groups.add(Group.objects.get(name="submitter"))
    pipeline = Pipeline.objects.get(name="sample_task")
    Job.objects.bulk_create(
        Job(pipeline=pipeline, pipeline_version=1, pipeline_config=pipeline.config, user_id=user.pk, input_data={})
        for _ in range(args.jobs)
    )
    environ = (
        RequestFactory()
        .get("/api/v1/jobs/", HTTP_HOST="127.0.0.1", HTTP_AUTHORIZATION=f"Bearer {AccessToken.for_user(user)}")
        .environ
    )
    first_audit_id = AuditLog.objects.order_by("-id").values_list("id", flat=True).first() or 0

    per_round = max(1, args.requests // args.rounds)
    on = handler(True)
    off = handler(False)
    measure(on, environ, 50)  # warm up both paths
    measure(off, environ, 50)
    results = {"on": ([], []), "off": ([], [])}
    try:
        for _ in range(args.rounds):
            for name, wsgi in (("on", on), ("off", off)):
                served, closed = measure(wsgi, environ, per_round)
                results[name][0].extend(served)
                results[name][1].extend(closed)
    finally:
        Job.objects.filter(user_id=user.pk).delete()
        AuditLog.objects.filter(id__gt=first_audit_id, user_id=user.pk)._purge()
        user.delete()

    def ms(values):
        return statistics.median(values) * 1000

    def p95(values):
        return statistics.quantiles(values, n=20)[-1] * 1000

    on_median, off_median = ms(results["on"][0]), ms(results["off"][0])
    print(f"database: {django.db.connection.vendor}; {per_round * args.rounds} requests per variant, {args.jobs} jobs")
    print(f"audit off: median {off_median:.2f} ms, p95 {p95(results['off'][0]):.2f} ms")
    print(f"audit on:  median {on_median:.2f} ms, p95 {p95(results['on'][0]):.2f} ms")
    print(f"ratio (on/off, median): {on_median / off_median:.3f}  (goal < 1.10)")
    print(f"audit write after the response (on close): median {ms(results['on'][1]):.2f} ms")


if __name__ == "__main__":
    main()
