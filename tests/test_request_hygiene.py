"""Request ids, throttling, CORS, malformed credentials, settings safety."""

import logging
import subprocess
import sys

import pytest
import redis
from rest_framework.test import APIClient

from tests import credentials

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


def _rates(settings, **rates):
    settings.THROTTLE_RATES = {**settings.THROTTLE_RATES, **rates}


def test_burst_over_the_user_rate_is_429_with_retry_after(settings, user):
    _rates(settings, user="3/minute")
    client = APIClient()
    headers = credentials.jwt_for(user)
    statuses = [client.get("/api/v1/jobs/", **headers).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]

    response = client.get("/api/v1/jobs/", **headers)
    assert response.status_code == 429
    assert 0 < int(response["Retry-After"]) <= 60
    assert response.json()["error"] == "throttled"


def test_anonymous_callers_are_limited_per_ip(settings, db):
    _rates(settings, anon="2/minute")
    client = APIClient()
    statuses = [client.get("/api/v1/jobs/", REMOTE_ADDR="10.9.8.7").status_code for _ in range(3)]
    assert statuses == [401, 401, 429]
    assert client.get("/api/v1/jobs/", REMOTE_ADDR="10.9.8.6").status_code == 401


def test_login_attempts_are_limited(settings, user):
    _rates(settings, login="2/minute")
    client = APIClient()
    body = {"username": "alice", "password": "wrong"}
    statuses = [client.post("/api/v1/auth/login/", body, format="json").status_code for _ in range(3)]
    assert statuses == [401, 401, 429]


def test_throttle_counts_live_in_redis_when_the_cache_is_redis(settings, user, redis_url):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": redis_url}}
    _rates(settings, user="2/minute")
    client = APIClient()
    headers = credentials.jwt_for(user)
    assert [client.get("/api/v1/jobs/", **headers).status_code for _ in range(3)] == [200, 200, 429]
    keys = redis.Redis.from_url(redis_url).keys(f"*throttle_user_{user.pk}*")
    assert len(keys) == 1


@pytest.mark.parametrize(
    "headers",
    [
        {"HTTP_AUTHORIZATION": "Bearer"},
        {"HTTP_AUTHORIZATION": "Bearer "},
        {"HTTP_AUTHORIZATION": "Bearer a.b.c"},
        {"HTTP_AUTHORIZATION": "Bearer " + "A" * 10_000},
        {"HTTP_AUTHORIZATION": "Api-Key "},
        {"HTTP_AUTHORIZATION": "Api-Key no-dot-in-it"},
        {"HTTP_AUTHORIZATION": "Api-Key abc.def"},
        {"HTTP_AUTHORIZATION": "Api-Key " + "k" * 10_000 + ".x"},
        {"HTTP_AUTHORIZATION": "Basic Zm9vOmJhcg=="},
        {"HTTP_AUTHORIZATION": "Token deadbeef"},
        {"HTTP_AUTHORIZATION": "\u00e9\u00e9\u00e9"},
        {"HTTP_X_API_KEY": ""},
        {"HTTP_X_API_SECRET": ""},
        {"HTTP_X_API_SECRET": "x" * 10_000},
    ],
    ids=lambda h: next(iter(h.values()))[:24],
)
def test_malformed_credentials_are_401_in_the_error_shape(headers, db):
    response = APIClient().get("/api/v1/jobs/", **headers)
    assert response.status_code == 401
    # The jobs list is also the LLM workflow service's: its errors add the service's `detail`.
    assert set(response.json()) == {"error", "message", "details", "request_id", "detail"}


def test_cors_allows_configured_origins_only(settings, db):
    settings.CORS_ALLOWED_ORIGINS = ["https://app.example.com"]
    client = APIClient()
    preflight = {"HTTP_ACCESS_CONTROL_REQUEST_METHOD": "POST", "HTTP_ACCESS_CONTROL_REQUEST_HEADERS": "x-api-key"}

    allowed = client.options("/api/v1/jobs/", HTTP_ORIGIN="https://app.example.com", **preflight)
    assert allowed["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert "x-api-key" in allowed["Access-Control-Allow-Headers"]

    denied = client.options("/api/v1/jobs/", HTTP_ORIGIN="https://evil.example.net", **preflight)
    assert "Access-Control-Allow-Origin" not in denied


def test_request_id_is_echoed_and_in_every_log_line_of_the_request(user, caplog):
    caplog.set_level(logging.INFO)
    response = APIClient().get("/api/v1/jobs/not-a-job/", HTTP_X_REQUEST_ID="trace-123", **credentials.jwt_for(user))
    assert response.status_code == 404
    assert response["X-Request-ID"] == "trace-123"
    assert response.json()["request_id"] == "trace-123"
    request_records = [r for r in caplog.records if r.name == "django.request"]
    assert request_records
    assert all(getattr(r, "request_id", None) == "trace-123" for r in request_records)


def test_generated_request_ids_differ_per_request(db):
    client = APIClient()
    first, second = client.get("/api/v1/jobs/"), client.get("/api/v1/jobs/")
    assert first["X-Request-ID"] != second["X-Request-ID"]


def _settings_value(env: dict, expression: str) -> subprocess.CompletedProcess:
    code = f"import django, os; from django.conf import settings; django.setup(); print(repr(({expression})))"
    base = {"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "jobsite.settings", "DRAMATIQ_BROKER_URL": "stub"}
    return subprocess.run(
        [sys.executable, "-c", code], env={**base, **env}, cwd=ROOT, capture_output=True, text=True, timeout=60
    )


def test_secret_key_is_required_when_debug_is_off():
    result = _settings_value({"DEBUG": "0"}, "settings.SECRET_KEY")
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_cookies_are_secure_and_headers_set_when_debug_is_off():
    expression = (
        "settings.SESSION_COOKIE_SECURE, settings.CSRF_COOKIE_SECURE, "
        "settings.SECURE_CONTENT_TYPE_NOSNIFF, settings.SECURE_REFERRER_POLICY"
    )
    production = _settings_value({"DEBUG": "0", "SECRET_KEY": "k" * 50}, expression)
    assert production.stdout.strip() == "(True, True, True, 'same-origin')"
    development = _settings_value({"DEBUG": "1"}, "settings.SESSION_COOKIE_SECURE")
    assert development.stdout.strip() == "False"


def test_security_headers_are_sent(db):
    response = APIClient().get("/health")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"


def test_guessing_api_keys_is_throttled_per_ip(settings, db):
    _rates(settings, anon="3/minute")
    client = APIClient()
    statuses = [
        client.get("/api/v1/jobs/", HTTP_AUTHORIZATION=f"Api-Key guess{n}.x", REMOTE_ADDR="10.1.1.1").status_code
        for n in range(4)
    ]
    assert statuses == [401, 401, 401, 429]


def test_the_run_log_capture_sees_request_logs(user):
    from tests.conftest import RUN_LOG

    before = len(RUN_LOG.lines)
    APIClient().get("/api/v1/jobs/00000000-0000-0000-0000-000000000000/", **credentials.jwt_for(user))
    assert any("Not Found: /api/v1/jobs/00000000" in line for line in RUN_LOG.lines[before:])
