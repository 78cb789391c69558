"""An operator runs the queue from the admin in a real Chromium, against a real server and worker."""

import re
import time
from datetime import timedelta

import pytest
import requests
from django.utils import timezone
from playwright.sync_api import expect

from jobs import selectors
from jobs.models import Job, JobStatus
from pipelines.services import pipeline_ensure
from tests.admin.browser.conftest import api_headers
from tests.admin.conftest import job_retried_twice
from tests.factories import JobFactory, WorkerProcessFactory

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


def wait_for(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def tile(page, name):
    return page.locator(f'[data-metric="{name}"] .n')


def shown_ids(page) -> set[str]:
    return {code.get_attribute("title") for code in page.locator("#result_list th.field-short_id code").all()}


def choose(page, list_filter, label):
    """Follow a filter's link and wait for the new list to load: the filters below share counts and URL
    parameters with the page before, so waiting on those could read the old page mid-navigation."""
    with page.expect_navigation():
        list_filter.get_by_role("link", name=label, exact=True).click()


def test_the_dashboard_shows_the_datas_numbers_and_its_refresh_can_be_paused(operator_page):
    pipeline = pipeline_ensure(name="echoes", config={"stages": [{"name": "echo", "type": "echo"}]})[0]
    now = timezone.now()
    for status in ("queued", "queued", "processing"):
        JobFactory(pipeline=pipeline, status=status, locked_by="x:1:a/T" if status == "processing" else "")
    for ms in (120, 240):
        JobFactory(pipeline=pipeline, status="completed", duration_ms=ms, completed_at=now)
    JobFactory(pipeline=pipeline, status="failed", error_message="boom", completed_at=now)
    assert wait_for(lambda: selectors.live_workers().count() == 1)  # the worker's heartbeat has recorded it
    page = operator_page
    page.goto("/admin/")

    counts = selectors.job_counts_by_status()
    expect(tile(page, "running")).to_have_text(str(counts["queued"] + counts["processing"]))
    expect(tile(page, "completed")).to_have_text(str(counts["completed"]))
    expect(tile(page, "failed")).to_have_text("1")
    expect(tile(page, "all")).to_have_text(str(Job.objects.count()))
    expect(tile(page, "success_rate")).to_have_text("66.7 %")
    expect(tile(page, "p95")).to_have_text("240 ms")
    expect(tile(page, "processed_hour")).to_have_text(str(selectors.jobs_finished_since(now - timedelta(hours=1))))
    expect(page.locator('#js-pipelines tr[data-pipeline="echoes"]')).to_be_visible()
    expect(page.locator("svg.js-chart").first).to_be_visible()
    expect(tile(page, "live_workers")).to_have_text(str(selectors.live_workers().count()))

    JobFactory(pipeline=pipeline, status="failed", error_message="boom", completed_at=timezone.now())
    expect(tile(page, "failed")).to_have_text("2", timeout=12_000)  # refreshed in place within ~5 s

    page.get_by_role("button", name="Pause auto-refresh").click()
    expect(page.locator("#js-refresh")).to_have_attribute("data-state", "paused")
    JobFactory(pipeline=pipeline, status="failed", error_message="boom", completed_at=timezone.now())
    page.wait_for_timeout(6_500)
    expect(tile(page, "failed")).to_have_text("2")
    page.get_by_role("button", name="Resume auto-refresh").click()
    expect(tile(page, "failed")).to_have_text("3", timeout=12_000)

    page.locator('[data-metric="failed"]').click()
    expect(page).to_have_url(re.compile(r"/admin/jobs/job/\?status=failed&created=24h$"))
    # The URL changes before the list is drawn: wait for its rows, not just the navigation.
    expect(page.locator("#result_list th.field-short_id code")).to_have_count(3)


def test_the_list_filters_by_each_status_group_and_period(operator_page):
    now = timezone.now()
    jobs = {status: JobFactory(status=status) for status in ("queued", "processing", "completed", "failed", "pending")}
    week_old = JobFactory(status="completed")
    month_old = JobFactory(status="failed")
    Job.objects.filter(pk=week_old.pk).update(created_at=now - timedelta(days=3))
    Job.objects.filter(pk=month_old.pk).update(created_at=now - timedelta(days=20))
    page = operator_page
    page.goto("/admin/jobs/job/")
    assert len(shown_ids(page)) == 7
    row = page.locator("#result_list tbody tr").first
    assert row.bounding_box()["height"] < 40  # one line per job at 1400 px

    expected = {
        "Running (queued, processing)": {jobs["queued"], jobs["processing"]},
        "Completed": {jobs["completed"], week_old},
        "Failed": {jobs["failed"], month_old},
    }
    status_filter = page.locator('details[data-filter-title="status"]')
    for label, wanted in expected.items():
        choose(page, status_filter, label)
        expect(page.locator("#js-result-count")).to_contain_text(f"{len(wanted)} job")
        assert shown_ids(page) == {str(j.pk) for j in wanted}
    choose(page, status_filter, "All")

    periods = {
        "Today (since 00:00 UTC)": {str(j.pk) for j in jobs.values()},
        "Last 7 days": {str(j.pk) for j in [*jobs.values(), week_old]},
        "Last 30 days": {str(j.pk) for j in [*jobs.values(), week_old, month_old]},
    }
    created_filter = page.locator('details[data-filter-title="created"]')
    for label, wanted in periods.items():
        choose(page, created_filter, label)
        expect(page.locator("#js-result-count")).to_contain_text(f"{len(wanted)} job")
        assert shown_ids(page) == wanted, label

    choose(page, status_filter, "Failed")
    expect(page).to_have_url(re.compile(r"status=failed.*created=30d|created=30d.*status=failed"))
    assert shown_ids(page) == {str(jobs["failed"].pk), str(month_old.pk)}


def _submit(url, pipeline, **body):
    response = requests.post(f"{url}/api/v1/jobs/", json={"pipeline": pipeline, "input_data": {}, **body},
                             headers=api_headers(), timeout=10)  # fmt: skip
    assert response.status_code == 201, response.text
    return response.json()["job_id"]


def _status(job_id):
    return Job.objects.filter(pk=job_id).values_list("status", flat=True).first()


@pytest.fixture
def pipelines(transactional_db):
    pipeline_ensure(name="napper", config={"stages": [{"name": "nap", "type": "sleep", "params": {"seconds": 60}}]})
    return pipeline_ensure(name="quick", config={"stages": [{"name": "echo", "type": "echo"}]})[0]


def test_cancel_a_running_job_and_retry_a_failed_one_from_the_list(operator_page, live_server_url, pipelines):
    running = _submit(live_server_url, "napper")
    assert wait_for(lambda: _status(running) == JobStatus.PROCESSING)
    failed = JobFactory(pipeline=pipelines, status="failed", error_message="boom")
    page = operator_page

    page.goto(f"/admin/jobs/job/?q={running}")
    page.locator(f'input.action-select[value="{running}"]').check()
    page.select_option("select[name=action]", "cancel_jobs")
    page.get_by_role("button", name="Go").first.click()
    expect(page.locator(".messagelist")).to_contain_text("Cancel: 1 job(s)")
    assert wait_for(lambda: _status(running) == JobStatus.CANCELLED, timeout=15)

    page.goto("/admin/jobs/job/?status=failed")
    page.locator(f'input.action-select[value="{failed.pk}"]').check()
    page.select_option("select[name=action]", "retry_jobs")
    page.get_by_role("button", name="Go").first.click()
    expect(page.locator(".messagelist")).to_contain_text("Retry (resume): 1 job(s)")
    assert wait_for(lambda: _status(failed.pk) == JobStatus.COMPLETED, timeout=20)


def test_cancel_and_retry_from_the_job_page(operator_page, live_server_url, pipelines):
    running = _submit(live_server_url, "napper")
    assert wait_for(lambda: _status(running) == JobStatus.PROCESSING)
    page = operator_page
    page.goto(f"/admin/jobs/job/{running}/change/")
    expect(page.locator("#js-why")).to_contain_text("Held by worker")
    page.locator('[data-action="cancel"]').click()
    expect(page.locator(".messagelist")).to_contain_text("Cancel: done")
    assert wait_for(lambda: _status(running) == JobStatus.CANCELLED, timeout=15)

    failed = JobFactory(pipeline=pipelines, status="failed", error_message="boom")
    page.goto(f"/admin/jobs/job/{failed.pk}/change/")
    expect(page.locator('[data-action="cancel"]')).to_have_count(0)
    page.locator('[data-action="retry"]').click()
    expect(page.locator(".messagelist")).to_contain_text("Retry (resume): done")
    assert wait_for(lambda: _status(failed.pk) == JobStatus.COMPLETED, timeout=20)
    page.reload()
    expect(page.locator("#js-summary [data-field=status]")).to_have_text("Completed")
    expect(page.locator("#js-audit")).to_contain_text("admin.job.retry")


def test_the_ledger_of_a_job_that_retried_twice(operator_page):
    job = job_retried_twice()
    WorkerProcessFactory(worker_id="box:3:cc")
    page = operator_page
    page.goto(f"/admin/jobs/job/{job.pk}/change/")

    timeline = page.locator("#js-timeline tbody tr")
    claims = page.locator("#js-timeline tbody tr", has_text="claimed")
    expect(claims).to_have_count(3)
    for worker in ("box:1:aa/Thread-1", "box:2:bb/Thread-4", "box:3:cc/Thread-1"):
        expect(page.locator("#js-timeline")).to_contain_text(worker)
    expect(page.locator("#js-timeline tbody tr", has_text="Retrying")).to_have_count(2)
    expect(page.locator("#js-timeline")).to_contain_text("backoff 1890 ms")
    expect(timeline.first).to_contain_text("+0.000 s")
    expect(page.locator("#js-timeline")).to_contain_text("+6.200 s")
    expect(page.locator("#js-timeline")).to_contain_text(".020")  # milliseconds

    traceback = page.locator("#js-stages details.js-tb", has_text="traceback").first
    expect(traceback.locator("pre")).not_to_be_visible()
    traceback.locator("summary").click()
    expect(traceback.locator("pre")).to_be_visible()
    expect(traceback.locator("pre")).to_contain_text("Traceback (most recent call last)")
    expect(page.locator("input[name=_save]")).to_have_count(0)
