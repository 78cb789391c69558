"""Fixtures for chaos tests: a Redis and a PostgreSQL of their own, on spare ports.

Both are session-scoped (PostgreSQL's initdb costs about a second) and are
started again after any test that left them stopped or killed, so each test
finds them running. Tests that use them are marked `chaos`, and get a generous
`timeout` when pytest-timeout is installed.
"""

import pytest

from tests.conftest import require_service

from .servers import PrivatePostgres, PrivateRedis

SERVER_FIXTURES = ("private_redis", "private_postgres")
CHAOS_TIMEOUT = 300  # seconds: server starts, restarts and crash recovery are slow


def pytest_configure(config):
    config.addinivalue_line("markers", "chaos: starts, stops and kills its own Redis/PostgreSQL servers (slow)")


def pytest_collection_modifyitems(config, items):
    has_timeout = config.pluginmanager.hasplugin("timeout")
    for item in items:
        if any(name in getattr(item, "fixturenames", ()) for name in SERVER_FIXTURES):
            item.add_marker(pytest.mark.chaos)
            if has_timeout and item.get_closest_marker("timeout") is None:
                item.add_marker(pytest.mark.timeout(CHAOS_TIMEOUT))


def _construct(kind, service):
    """Build a private server; without its binaries, skip (or fail when the run requires the service)."""
    try:
        return kind()
    except RuntimeError as exc:  # the binaries or the postgres user are missing
        require_service(service, str(exc))


@pytest.fixture(scope="session")
def private_redis():
    """A running redis-server of the tests' own (never the shared 6379); `.url` for clients."""
    server = _construct(PrivateRedis, "redis")
    with server:
        yield server


@pytest.fixture(scope="session")
def private_postgres():
    """A running PostgreSQL cluster of the tests' own (never the shared 5432); `.url(db)` for clients."""
    server = _construct(PrivatePostgres, "postgres")
    with server:
        yield server


@pytest.fixture(autouse=True)
def _revive_private_servers(request):
    """Start again any private server a test stopped or killed, for the next test."""
    servers = [request.getfixturevalue(name) for name in SERVER_FIXTURES if name in request.fixturenames]
    yield
    for server in servers:
        if not server.running:
            server.start()
