"""Real headless Chromium (Debian's package, driven by Playwright) against a production-like server.

The server is gunicorn with DEBUG off, so the security headers, the
Content-Security-Policy and WhiteNoise's collected static files are those of
a deployment.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require_service
from tests.e2e.conftest import child_env, database_url, web_server

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def collected_static(tmp_path_factory):
    """STATIC_ROOT with `collectstatic` run, as the Dockerfile does."""
    static_root = tmp_path_factory.mktemp("static")
    env = child_env(STATIC_ROOT=str(static_root), DRAMATIQ_BROKER_URL="stub")
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"], cwd=ROOT, env=env, check=True, timeout=300
    )
    return static_root


@pytest.fixture
def production_server(transactional_db, collected_static):
    """gunicorn with DEBUG off on the test database; yields its base URL."""
    env = child_env(DATABASE_URL=database_url(), DRAMATIQ_BROKER_URL="stub", STATIC_ROOT=str(collected_static))
    with web_server(env) as url:
        yield url


@pytest.fixture
def browser():
    """A headless Chromium; skipped (or failed, when the run requires it) without the Debian package."""
    if not shutil.which(CHROMIUM):
        require_service("chromium", f"{CHROMIUM} is missing (Debian package chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
