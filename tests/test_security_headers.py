"""HTTPS, HSTS, proxies and the Content-Security-Policy (the browser side is in tests/browser/)."""

import subprocess
import sys
from pathlib import Path

from django.test import Client

ROOT = Path(__file__).resolve().parents[1]
PRODUCTION = {"DEBUG": "0", "SECRET_KEY": "k" * 50}


def settings_value(env: dict, expression: str) -> str:
    """Evaluate `expression` on the settings a process started with exactly `env` would have."""
    code = f"import django; from django.conf import settings; django.setup(); print(repr(({expression})))"
    base = {"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "jobsite.settings", "DRAMATIQ_BROKER_URL": "stub"}
    result = subprocess.run(
        [sys.executable, "-c", code], env={**base, **env}, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_forwarded_proto_is_believed_only_behind_a_proxy():
    assert settings_value(PRODUCTION, "getattr(settings, 'SECURE_PROXY_SSL_HEADER', None)") == "None"
    assert settings_value({**PRODUCTION, "NUM_PROXIES": "1"}, "settings.SECURE_PROXY_SSL_HEADER") == (
        "('HTTP_X_FORWARDED_PROTO', 'https')"
    )


def test_a_client_claiming_https_without_a_proxy_is_not_taken_at_its_word(db):
    response = Client().get("/api/v1/jobs/", HTTP_X_FORWARDED_PROTO="https")
    assert "Strict-Transport-Security" not in response


def test_https_responses_carry_hsts_for_a_year_without_subdomains_or_preload(db):
    response = Client().get("/health", secure=True)
    assert response["Strict-Transport-Security"] == "max-age=31536000"


def test_plain_http_responses_carry_no_hsts(db):
    assert "Strict-Transport-Security" not in Client().get("/health")


def test_hsts_options_are_the_operators_choice():
    expression = "settings.SECURE_HSTS_SECONDS, settings.SECURE_HSTS_INCLUDE_SUBDOMAINS, settings.SECURE_HSTS_PRELOAD"
    chosen = {"SECURE_HSTS_SECONDS": "3600", "SECURE_HSTS_INCLUDE_SUBDOMAINS": "1", "SECURE_HSTS_PRELOAD": "1"}
    assert settings_value({**PRODUCTION, **chosen}, expression) == "(3600, True, True)"
    assert settings_value({**PRODUCTION, "SECURE_HSTS_SECONDS": "0"}, "settings.SECURE_HSTS_SECONDS") == "0"


def test_pages_carry_a_content_security_policy_when_debug_is_off(db):
    policy = Client().get("/admin/login/")["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["script-src"] == "'self'"
    assert directives["object-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"


def test_no_content_security_policy_in_development():
    assert settings_value({"DEBUG": "1"}, "getattr(settings, 'CONTENT_SECURITY_POLICY', None)") == "None"
