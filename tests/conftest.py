"""Shared fixtures: API clients, pipelines, real-service switches."""

import dramatiq
import pytest
import redis
from django.conf import settings
from rest_framework.test import APIClient

from pipelines.demo import DEMO_PIPELINES
from pipelines.services import pipeline_ensure
from tests.factories import UserFactory


def pytest_sessionstart(session):
    """Refuse to run without the services CI requires, instead of skipping their tests."""
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
    yield broker
    broker.flush_all()


@pytest.fixture
def user(db):
    return UserFactory(username="alice")


@pytest.fixture
def other_user(db):
    return UserFactory(username="bob")


@pytest.fixture
def staff_user(db):
    return UserFactory(username="operator", is_staff=True)


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
