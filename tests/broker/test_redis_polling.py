"""The Redis broker's consumers poll an empty queue at the pace its pickup needs."""

import pytest
from dramatiq.brokers.redis import RedisBroker as DramatiqRedisBroker

from jobsite import settings as project_settings
from jobsite.broker.redis import RedisBroker


@pytest.fixture
def broker():
    broker = RedisBroker(url="redis://127.0.0.1:6379/0")  # consume() connects to nothing
    yield broker
    broker.client.close()


def test_redis_urls_get_the_project_broker():
    for scheme in ("redis", "rediss"):
        assert project_settings._BROKERS[scheme] == "jobsite.broker.redis.RedisBroker"
    assert issubclass(RedisBroker, DramatiqRedisBroker)  # what the dead-letter, depth and bulk code look for


@pytest.mark.parametrize("queue", ["jobs", "jobs.high", "jobs.urgent", "webhooks"])
def test_job_and_webhook_queues_poll_at_the_idle_poll(broker, settings, queue):
    settings.WORKER_IDLE_POLL_MS, settings.WORKER_IDLE_POLL_SLOW_MS = 50, 500

    assert broker.consume(queue, prefetch=16, timeout=50).timeout == 50


@pytest.mark.parametrize("queue", ["jobs.DQ", "jobs.urgent.DQ", "webhooks.DQ", "maintenance", "default"])
def test_other_queues_poll_at_the_slow_pace(broker, settings, queue):
    settings.WORKER_IDLE_POLL_MS, settings.WORKER_IDLE_POLL_SLOW_MS = 50, 500

    consumer = broker.consume(queue, prefetch=16, timeout=50)

    assert consumer.timeout == 500
    assert consumer.prefetch == 16


def test_a_slower_worker_timeout_is_kept(broker, settings):
    settings.WORKER_IDLE_POLL_SLOW_MS = 500

    assert broker.consume("maintenance", timeout=2000).timeout == 2000
