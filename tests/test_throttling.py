"""Rate limits under real concurrency: exactly the limit gets through, per caller and per user across keys."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from django.test import RequestFactory
from rest_framework.test import APIClient

from jobsite.api.throttling import LoginRateThrottle, PrincipalRateThrottle
from tests import credentials
from tests.e2e.conftest import child_env, database_url, web_server

PARALLEL = 40


def _rates(settings, **rates):
    settings.THROTTLE_RATES = {**settings.THROTTLE_RATES, **rates}


@pytest.fixture
def redis_cache(settings, redis_url):
    """The default cache on the test Redis, as `CACHE_URL=redis://...` configures it."""
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": redis_url}}
    return redis_url


def _at_once(check, n=PARALLEL) -> list[bool]:
    """Run `check` on `n` threads released together; return what each got."""
    barrier = threading.Barrier(n)

    def one(_):
        barrier.wait()
        return check()

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(one, range(n)))


@pytest.mark.parametrize("cache_kind", ["locmem", "redis"])
def test_parallel_logins_from_one_ip_let_exactly_the_limit_through(settings, cache_kind, request):
    if cache_kind == "redis":
        request.getfixturevalue("redis_cache")
    _rates(settings, login="10/minute")
    login = RequestFactory().post("/api/v1/auth/login/", REMOTE_ADDR="10.0.0.9")

    allowed = _at_once(lambda: LoginRateThrottle().allow_request(login, None))

    assert allowed.count(True) == 10


def test_parallel_requests_of_one_user_let_exactly_the_limit_through(settings, redis_cache, user):
    _rates(settings, user="7/minute")
    request = RequestFactory().get("/api/v1/jobs/")
    request.user, request.auth = user, None

    allowed = _at_once(lambda: PrincipalRateThrottle().allow_request(request, None))

    assert allowed.count(True) == 7


def test_a_users_api_keys_share_the_users_bucket(settings, user, other_user):
    _rates(settings, user="3/minute", key="100/minute")
    client = APIClient()
    first, second = credentials.api_key_for(user), credentials.api_key_for(user)

    statuses = [client.get("/api/v1/jobs/", **headers).status_code for headers in (first, second, first)]
    assert statuses == [200, 200, 200]
    assert client.get("/api/v1/jobs/", **second).status_code == 429
    assert client.get("/api/v1/jobs/", **credentials.jwt_for(user)).status_code == 429
    # Another user's bucket is their own.
    assert client.get("/api/v1/jobs/", **credentials.api_key_for(other_user)).status_code == 200


def test_each_api_key_also_has_its_own_bucket(settings, user):
    _rates(settings, key="2/minute", user="100/minute")
    client = APIClient()
    first, second = credentials.api_key_for(user), credentials.api_key_for(user)
    assert [client.get("/api/v1/jobs/", **first).status_code for _ in range(3)] == [200, 200, 429]
    assert client.get("/api/v1/jobs/", **second).status_code == 200


def test_retry_after_counts_whole_seconds_to_the_end_of_the_window(settings, user):
    _rates(settings, user="1/second")
    client = APIClient()
    headers = credentials.jwt_for(user)
    responses = [client.get("/api/v1/jobs/", **headers) for _ in range(5)]
    refused = [r for r in responses if r.status_code == 429]
    assert refused
    assert all(r["Retry-After"] == "1" for r in refused)


@pytest.mark.e2e
def test_forty_parallel_logins_against_a_live_server_let_exactly_ten_through(transactional_db, redis_url):
    """The attack as it was found: 40 logins at once from one client, several server processes."""
    env = child_env(DATABASE_URL=database_url(), DRAMATIQ_BROKER_URL="stub", CACHE_URL=redis_url,
                    THROTTLE_RATE_LOGIN="10/minute")  # fmt: skip
    with web_server(env, workers=2, threads=20) as url:
        session = requests.Session()
        session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=PARALLEL))

        def login():
            body = {"username": "nobody-here", "password": "wrong password"}
            return session.post(f"{url}/api/v1/auth/login/", json=body, timeout=60).status_code

        statuses = _at_once(login)

    assert sorted(set(statuses)) == [401, 429]
    assert statuses.count(401) == 10
