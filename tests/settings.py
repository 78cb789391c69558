"""Settings for the test suite: the project's settings with test defaults.

`make test` runs against whatever `DATABASE_URL` names (SQLite by default,
PostgreSQL in CI). In-process code uses Dramatiq's StubBroker unless a test is
about delivery; tests about real brokers use `REDIS_URL` and the database
broker, and end-to-end tests hand `TEST_BROKER_URL` to real worker processes.
"""

import os
import tempfile

os.environ.setdefault("SECRET_KEY", "tests-only-secret-key-not-for-production")
os.environ.setdefault("JOBSITE_API_SECRET", "test-api-secret")
os.environ.setdefault("DEBUG", "0")
os.environ.setdefault("SECURE_COOKIES", "0")
# The broker the end-to-end workers use; the in-process broker is the stub.
# Kept in the environment too: pytest-xdist's workers inherit the controller's environment, where
# DRAMATIQ_BROKER_URL is already "stub".
TEST_BROKER_URL = os.environ.setdefault("TEST_BROKER_URL", os.environ.get("DRAMATIQ_BROKER_URL", "db"))
os.environ["DRAMATIQ_BROKER_URL"] = "stub"


def _worker_redis_url(url: str) -> str:
    """Under pytest-xdist each worker flushes its own Redis database: REDIS_URL's index + the worker's number."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not url or not worker.startswith("gw"):
        return url
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    base = int(parts.path.strip("/") or 0)
    return urlunsplit(parts._replace(path=f"/{(base + int(worker[2:])) % 16}"))


TEST_REDIS_URL = _worker_redis_url(os.environ.get("REDIS_URL", ""))
# Comma-separated services that must be present: a missing one fails the run.
TEST_REQUIRE_SERVICES = {s for s in os.environ.get("TEST_REQUIRE_SERVICES", "").split(",") if s}

from jobsite.settings import *  # noqa: E402, F403
from jobsite.settings import DATABASES  # noqa: E402

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3" and not DATABASES["default"]["TEST"].get("NAME"):
    # A file, not :memory:, so that worker and server processes share it.
    DATABASES["default"]["TEST"]["NAME"] = os.path.join(tempfile.gettempdir(), f"jobsite-test-{os.getpid()}.sqlite3")

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
MEDIA_ROOT = tempfile.mkdtemp(prefix="jobsite-test-media-")
DB_BROKER_POLL_INTERVAL_MS = 50
STATIC_ROOT = tempfile.mkdtemp(prefix="jobsite-test-static-")
