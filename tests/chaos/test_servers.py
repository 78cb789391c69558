"""The chaos infrastructure works for real: private servers start, serve, stop, restart and crash."""

import psycopg
import pytest
import redis

from .conftest import _construct
from .servers import SHARED_PORTS, PrivatePostgres, PrivateRedis, _check_port, free_port

pytestmark = pytest.mark.chaos


def _rows(url: str) -> list:
    with psycopg.connect(url, connect_timeout=5) as conn:
        return conn.execute("SELECT id, note FROM chaos ORDER BY id").fetchall()


def test_free_port_is_bindable_and_not_shared():
    port = free_port()
    assert port not in SHARED_PORTS
    for shared in (6379, 5432):
        with pytest.raises(ValueError, match="shared"):
            _check_port(shared)


def test_redis_serves_and_comes_back_empty_after_restart(private_redis):
    assert private_redis.port not in SHARED_PORTS
    assert private_redis.url == f"redis://127.0.0.1:{private_redis.port}/0"
    client = redis.Redis.from_url(private_redis.url, socket_timeout=2)
    client.set("chaos", "value")
    assert client.get("chaos") == b"value"

    private_redis.stop()
    assert not private_redis.running
    with pytest.raises(redis.ConnectionError):
        client.get("chaos")

    private_redis.start()
    assert client.get("chaos") is None  # nothing persisted
    client.set("chaos", "again")
    assert client.get("chaos") == b"again"


def test_redis_kill_then_start_on_the_same_port(private_redis):
    port = private_redis.port
    private_redis.kill()
    assert not private_redis.running
    assert not private_redis.ping()
    private_redis.start()
    assert private_redis.port == port
    assert redis.Redis.from_url(private_redis.url).ping()


def test_redis_as_context_manager_cleans_up():
    with _construct(PrivateRedis, "redis") as server:
        assert redis.Redis.from_url(server.url).ping()
        directory = server.dir
    assert not server.running
    assert not server.ping()
    assert not directory.exists()


def test_postgres_keeps_data_across_restart_and_recovers_from_kill(private_postgres):
    assert private_postgres.port not in SHARED_PORTS
    url = private_postgres.create_database("chaos_servers")
    assert url == f"postgres://postgres@127.0.0.1:{private_postgres.port}/chaos_servers"
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE chaos (id int PRIMARY KEY, note text)")
        conn.execute("INSERT INTO chaos VALUES (1, 'before restart')")

    # A connection held open across a restart breaks; a new one works and sees the data.
    held = psycopg.connect(url, autocommit=True)
    assert held.execute("SELECT 1").fetchone() == (1,)
    private_postgres.restart()
    with pytest.raises(psycopg.OperationalError):
        held.execute("SELECT 1")
    held.close()
    assert _rows(url) == [(1, "before restart")]

    # SIGKILL the postmaster after a committed write: start() runs crash recovery.
    with psycopg.connect(url) as conn:
        conn.execute("INSERT INTO chaos VALUES (2, 'before kill')")
    held = psycopg.connect(url, autocommit=True)
    private_postgres.kill()
    assert not private_postgres.running
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=2)
    with pytest.raises(psycopg.OperationalError):
        held.execute("SELECT 1")
    held.close()
    private_postgres.start()
    assert private_postgres.running
    assert _rows(url) == [(1, "before restart"), (2, "before kill")]
    assert "database system was interrupted" in private_postgres.log.read_text()


def test_postgres_stop_modes_and_default_url(private_postgres):
    private_postgres.stop(mode="immediate")
    assert not private_postgres.running
    private_postgres.start()
    with psycopg.connect(private_postgres.url(), connect_timeout=5) as conn:
        assert conn.execute("SELECT current_setting('port'), current_setting('fsync')").fetchone() == (
            str(private_postgres.port),
            "off",
        )


def test_revived_servers_are_running(private_redis, private_postgres):
    """Runs after tests that stopped or killed them: the fixtures brought them back."""
    assert private_redis.ping()
    with psycopg.connect(private_postgres.url(), connect_timeout=5) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_postgres_as_context_manager_removes_its_temp_dir():
    server = _construct(PrivatePostgres, "postgres")
    directory = server.dir
    with server:
        assert server.running
    assert not server.running
    assert not directory.exists()
