"""Real headless Chromium against a real web server and worker: the operators' admin as they use it.

The server (gunicorn) and the worker (`manage.py rundramatiq`) run once per module on the test
database with the database broker; each test is a transactional test whose data they see.
"""

import os
import re
import shutil
import subprocess
import sys
from contextlib import contextmanager

import pytest
from django.conf import settings

from tests.admin.conftest import staff_user
from tests.conftest import require_service
from tests.e2e.conftest import ROOT, child_env, database_url, stop, web_server, worker

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
PASSWORD = "correct horse battery staple"

pytestmark = pytest.mark.browser


def _playwright():
    if not os.path.exists(CHROMIUM):
        require_service("chromium", f"no Chromium at {CHROMIUM} (Debian package `chromium`)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require_service("chromium", "the playwright package is not installed")
    return sync_playwright


@pytest.fixture(scope="module")
def chromium():
    sync_playwright = _playwright()
    # Playwright's sync API keeps an event loop on this thread; the test's own database calls
    # (plain synchronous code, between browser steps) are safe, so Django is told not to refuse them.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        yield from _launch(sync_playwright)
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


def _launch(sync_playwright):
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
        )
        yield browser
        browser.close()


def server_env(**overrides):
    env = child_env(
        DATABASE_URL=database_url(),
        DRAMATIQ_BROKER_URL="db",
        DJANGO_SETTINGS_MODULE="tests.admin.browser.server_settings",
        WORKER_HEARTBEAT_SECONDS="1",
        STAGE_RETRY_BACKOFF_BASE_MS="50",
        **overrides,
    )
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    return env


@pytest.fixture(scope="module")
def live_server_url(django_db_setup, django_db_blocker, chromium):
    """gunicorn on the test database, and a worker on every queue; stopped after the module."""
    with django_db_blocker.unblock():
        env = server_env()
        with web_server(env) as url, worker(env, threads=2):
            yield url


@pytest.fixture
def operator_page(chromium, live_server_url, transactional_db):
    """A logged-in operator's browser tab at 1400 px."""
    staff_user("operator", "operator")  # the factory's password is PASSWORD
    context = chromium.new_context(viewport={"width": 1400, "height": 900}, base_url=live_server_url)
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto("/admin/login/?next=/admin/")
    page.fill("#id_username", "operator")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(re.compile(r"/admin/$"))
    yield page
    context.close()


def api_headers():
    return {"X-API-Secret": settings.JOBSITE_API_SECRET}


@contextmanager
def background_worker(env: dict, *, queues: list[str], threads: int = 2):
    """`manage.py rundramatiq` on some queues only."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "rundramatiq",
            "--processes",
            "1",
            "--threads",
            str(threads),
            "--queues",
            *queues,
        ],
        cwd=ROOT,
        env=env,
    )
    try:
        yield proc
    finally:
        stop(proc)
