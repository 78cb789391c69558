"""'Retry all matching' over 1,000 failed jobs, followed in a real Chromium until it finishes."""

import re

import pytest
from playwright.sync_api import expect

from jobs.models import BulkOperation, Job
from pipelines.services import pipeline_ensure
from tests.admin.browser.conftest import background_worker, server_env
from tests.e2e.conftest import web_server

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


@pytest.fixture(scope="module")
def live_server_url(django_db_setup, django_db_blocker, chromium):
    """The web server, and a worker on the maintenance queue only: the retried jobs wait, the operation runs."""
    with django_db_blocker.unblock():
        env = server_env()
        with web_server(env) as url, background_worker(env, queues=["maintenance"]):
            yield url


def test_retry_all_matching_over_a_thousand_failed_jobs(operator_page):
    pipeline = pipeline_ensure(name="quick", config={"stages": [{"name": "echo", "type": "echo"}]})[0]
    Job.objects.bulk_create(
        [
            Job(
                pipeline=pipeline,
                pipeline_version=1,
                pipeline_config=pipeline.config,
                status="failed",
                error_message="boom",
                attempts=1,
            )
            for _ in range(1000)
        ]
    )
    page = operator_page
    page.goto("/admin/jobs/job/?status=failed")
    expect(page.locator("#js-result-count")).to_contain_text("1000 jobs")
    page.locator("#action-toggle").check()
    page.get_by_role("button", name="Select all 1000 jobs").click()
    page.select_option("select[name=action]", "retry_jobs")
    page.get_by_role("button", name="Go").first.click()

    expect(page).to_have_url(re.compile(r"/admin/jobs/bulkoperation/[0-9a-f-]{36}/change/$"))
    expect(page.locator(".messagelist")).to_contain_text("Started in the background")
    # The page refreshes itself every 2 s while the operation runs.
    expect(page.locator("#operation")).to_contain_text("Completed", timeout=60_000)
    expect(page.locator("#operation .field-done")).to_contain_text("1000")
    expect(page.locator("#operation .field-outcome")).to_contain_text("1000 retried")

    operation = BulkOperation.objects.get()
    assert (operation.total, operation.succeeded, operation.skipped, operation.failed) == (1000, 1000, 0, 0)
    assert not Job.objects.filter(status="failed").exists()
