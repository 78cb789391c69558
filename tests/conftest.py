"""Shared fixtures: API clients, pipelines, real-service switches, the run's log scan."""

import logging

import dramatiq
import pytest
import redis
from django.conf import settings
from django.contrib.auth.models import Group, Permission
from django.core.cache import cache
from rest_framework.test import APIClient

from accounts.roles import ROLE_PERMISSIONS
from pipelines.demo import DEMO_PIPELINES
from pipelines.services import pipeline_ensure
from tests import credentials
from tests.factories import UserFactory


class LogCapture(logging.Handler):
    """Keeps every formatted log line of the run, exceptions included."""

    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record):
        try:
            self.lines.append(self.format(record))
        except Exception:  # a broken record must not break the run
            self.handleError(record)


RUN_LOG = LogCapture()


WORKER_SCANS: list[dict] = []


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """Under pytest-xdist: collect what each worker's own scan found (see pytest_sessionfinish)."""
    scan = getattr(node, "workeroutput", {}).get("log_scan")
    if scan:
        WORKER_SCANS.append(scan)


def pytest_sessionfinish(session, exitstatus):
    """Fail the run if any secret handed out by a test appears in any log line.

    Under pytest-xdist every worker scans its own lines and hands what it found to the controller,
    which fails the run.
    """
    logging.getLogger().removeHandler(RUN_LOG)
    secrets = credentials.SECRETS | {settings.JOBSITE_API_SECRET}
    leaked = sorted({secret[:12] + "…" for secret in secrets for line in RUN_LOG.lines if secret in line})
    if hasattr(session.config, "workeroutput"):
        session.config.workeroutput["log_scan"] = {"lines": len(RUN_LOG.lines), "leaked": leaked}
        return
    leaked = sorted(set(leaked).union(*(scan["leaked"] for scan in WORKER_SCANS)))
    lines = len(RUN_LOG.lines) + sum(scan["lines"] for scan in WORKER_SCANS)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if leaked:
        if reporter:
            reporter.write_line(f"SECRETS LEAKED INTO LOGS: {', '.join(leaked)}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    elif reporter:
        reporter.write_line(f"log scan: {lines} log lines checked for the run's secrets, none found")


def pytest_sessionstart(session):
    """Capture the run's logs; refuse to run without the services CI requires."""
    logging.getLogger().addHandler(RUN_LOG)
    required = settings.TEST_REQUIRE_SERVICES
    if "postgres" in required and settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        raise pytest.UsageError("TEST_REQUIRE_SERVICES names postgres but DATABASE_URL is not PostgreSQL.")
    if "redis" in required:
        if not settings.TEST_REDIS_URL:
            raise pytest.UsageError("TEST_REQUIRE_SERVICES names redis but REDIS_URL is not set.")
        try:
            redis.Redis.from_url(settings.TEST_REDIS_URL, socket_connect_timeout=2).ping()
        except redis.RedisError as exc:
            raise pytest.UsageError(f"Redis at REDIS_URL is unreachable: {exc}") from exc


def require_service(name: str, reason: str):
    """Skip when a service is absent, or fail when the run requires it."""
    if name in settings.TEST_REQUIRE_SERVICES:
        pytest.fail(f"{name} is required (TEST_REQUIRE_SERVICES) but {reason}")
    pytest.skip(f"{name} not configured: {reason}")


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """pytest-django's test database, and before it is dropped, the end of the sessions tests left open.

    Live servers and workers started by tests keep connections until their
    process or thread ends; PostgreSQL refuses to drop a database in use, so
    without this the run ended with a warning and left the database behind.
    """
    yield
    from django.db import connection

    if connection.vendor == "postgresql":
        with django_db_blocker.unblock(), connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
            )


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Every test starts with empty rate-limit counters."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def redis_url():
    """The Redis the suite may use; its database is flushed before the test."""
    if not settings.TEST_REDIS_URL:
        require_service("redis", "REDIS_URL is not set")
    client = redis.Redis.from_url(settings.TEST_REDIS_URL)
    client.flushdb()
    yield settings.TEST_REDIS_URL
    client.flushdb()


@pytest.fixture
def stub_broker():
    """The in-process StubBroker, emptied before and after the test."""
    broker = dramatiq.get_broker()
    broker.flush_all()
    declared = set(broker.queues)
    yield broker
    broker.flush_all()
    for name in set(broker.queues) - declared:  # a queue a test declared must not outlive it
        del broker.queues[name]
        broker.delay_queues.discard(name)


def grant_role(user, role: str):
    """Put `user` in the role's group, creating the group as the data migration does.

    Transactional tests flush the groups the migration made, so tests make sure here.
    """
    group, _ = Group.objects.get_or_create(name=role)
    group.permissions.set(
        Permission.objects.get(content_type__app_label=perm.split(".")[0], codename=perm.split(".")[1])
        for perm in ROLE_PERMISSIONS[role]
    )
    user.groups.add(group)
    return user


@pytest.fixture
def user(db):
    """A submitter: may create jobs and read their own."""
    return grant_role(UserFactory(username="alice"), "submitter")


@pytest.fixture
def other_user(db):
    return grant_role(UserFactory(username="bob"), "submitter")


@pytest.fixture
def operator_user(db):
    """An operator: reads, cancels and retries every job, manages pipelines."""
    return grant_role(UserFactory(username="operator"), "operator")


@pytest.fixture
def no_role_user(db):
    """A user in no group: authenticated, allowed nothing."""
    return UserFactory(username="nobody")


@pytest.fixture
def anon_client():
    return APIClient()


@pytest.fixture
def service_client():
    """A client authenticated as the service principal (`X-API-Secret`)."""
    client = APIClient()
    client.credentials(HTTP_X_API_SECRET=settings.JOBSITE_API_SECRET)
    return client


@pytest.fixture
def user_client(user):
    """A client logged in (session) as `user`."""
    client = APIClient()
    client.force_login(user)
    return client


@pytest.fixture
def demo_pipelines(db):
    """The demo pipelines `make run` installs, by name."""
    return {spec["name"]: pipeline_ensure(**spec)[0] for spec in DEMO_PIPELINES}
