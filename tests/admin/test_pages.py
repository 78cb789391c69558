"""The operators' admin pages through Django's test client: dashboard, job list, actions, ledger,
failure triage, workers, bulk operations, dead letters."""

import json
import re
import uuid
from datetime import timedelta

import dramatiq
import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.files.base import ContentFile
from django.utils import timezone

from audit.models import AuditLog
from jobs.models import BulkOperation, Job, JobEventType, JobResult
from tests.factories import JobEventFactory, JobFactory, PipelineFactory, StageRunFactory, WorkerProcessFactory

pytestmark = pytest.mark.django_db

LIST = "/admin/jobs/job/"


def metric(html: str, name: str) -> str:
    found = re.search(rf'data-metric="{name}"[^>]*>\s*<span class="n">(.*?)</span>', html, re.S)
    assert found, f"no {name} tile"
    return re.sub(r"<[^>]+>", "", found.group(1)).strip()


def row_ids(response) -> list[str]:
    return re.findall(r'name="_selected_action" value="([0-9a-f-]{36})"', response.content.decode())


def at(job, **fields):
    Job.objects.filter(pk=job.pk).update(**fields)
    job.refresh_from_db()
    return job


# --- dashboard --------------------------------------------------------------------------------


def test_the_dashboard_numbers_match_the_jobs(operator_client, pipeline, stub_broker):
    now = timezone.now()
    for status in ("queued", "queued", "processing", "pending"):
        JobFactory(pipeline=pipeline, status=status)
    for ms in (100, 200, 300):
        at(JobFactory(pipeline=pipeline, status="completed", duration_ms=ms), completed_at=now - timedelta(minutes=2))
    for _ in range(2):
        at(
            JobFactory(pipeline=pipeline, status="failed", error_message="boom"),
            completed_at=now - timedelta(seconds=20),
        )
    at(JobFactory(pipeline=pipeline, status="completed", duration_ms=50), created_at=now - timedelta(days=3))
    WorkerProcessFactory(queues=["jobs"], threads=8)
    WorkerProcessFactory(last_seen_at=now - timedelta(minutes=10))

    html = operator_client.get("/admin/").content.decode()

    assert (metric(html, "running"), metric(html, "completed"), metric(html, "failed"), metric(html, "all")) == (
        "3", "3", "2", "9",
    )  # fmt: skip
    assert metric(html, "success_rate") == "60.0 %"
    assert metric(html, "avg") == "200 ms" and metric(html, "p95") == "300 ms"
    assert (metric(html, "now_queued"), metric(html, "now_processing"), metric(html, "now_pending")) == ("2", "1", "1")
    assert (metric(html, "processed_minute"), metric(html, "processed_hour")) == ("2", "5")
    assert (metric(html, "live_workers"), metric(html, "stale_workers")) == ("1", "1")
    assert 'href="/admin/jobs/job/?status=failed&amp;created=24h"' in html
    assert "<svg" in html and "Completed and failed jobs per minute" in html
    assert "boom" in html  # top failures
    html_7d = operator_client.get("/admin/?window=7d").content.decode()
    assert metric(html_7d, "completed") == "4"


def test_the_stock_app_list_stays_reachable_and_the_tasks_entry_is_gone(operator_client):
    response = operator_client.get("/admin/models/")
    assert response.status_code == 200
    assert "Site administration" in response.content.decode()
    assert "django_dramatiq" not in response.content.decode()
    assert operator_client.get("/admin/django_dramatiq/task/").status_code == 404


def test_the_dashboard_says_when_the_broker_is_unreachable(operator_client):
    from dramatiq.brokers.redis import RedisBroker

    previous = dramatiq.get_broker()
    unreachable = RedisBroker(url="redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    unreachable.declare_queue("jobs")
    dramatiq.set_broker(unreachable)
    try:
        response = operator_client.get("/admin/")
    finally:
        dramatiq.set_broker(previous)
    assert response.status_code == 200
    assert "The broker is unreachable" in response.content.decode()


# --- the job list ---------------------------------------------------------------------------------


def test_the_list_shows_25_rows_by_default_and_the_chosen_page_size(operator_client, pipeline):
    Job.objects.bulk_create(
        [Job(pipeline=pipeline, pipeline_version=1, pipeline_config={}, status="completed") for _ in range(60)]
    )
    assert len(row_ids(operator_client.get(LIST))) == 25
    assert len(row_ids(operator_client.get(LIST + "?per_page=50"))) == 50
    assert len(row_ids(operator_client.get(LIST + "?per_page=7"))) == 25
    html = operator_client.get(LIST + "?per_page=50&p=2").content.decode()
    assert "60 jobs" in html and 'href="?per_page=100"' in html


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("status=running", {"queued", "processing"}),
        ("status=failed", {"failed"}),
        ("status=completed", {"completed"}),
        ("status=active", {"queued", "processing", "pending"}),
        ("status=pending", {"pending"}),
        ("has_error=yes", {"failed"}),
        ("", {"queued", "processing", "pending", "completed", "failed"}),
    ],
)
def test_status_groups_and_exact_statuses_filter_the_list(operator_client, pipeline, query, expected):
    jobs = {s: JobFactory(pipeline=pipeline, status=s) for s in ("queued", "processing", "pending", "completed")}
    jobs["failed"] = JobFactory(pipeline=pipeline, status="failed", error_message="boom")
    shown = set(row_ids(operator_client.get(f"{LIST}?{query}")))
    assert shown == {str(jobs[s].pk) for s in expected}


def test_created_periods_pipeline_username_action_and_worker_filter_the_list(operator_client):
    now = timezone.now()
    alpha = PipelineFactory(name="alpha")
    recent = JobFactory(pipeline=alpha, username="ann", action="sync", locked_by="box:1:aa/Thread-1")
    week = at(JobFactory(username="bob"), created_at=now - timedelta(days=3))
    month = at(JobFactory(username="bob"), created_at=now - timedelta(days=20))
    at(JobFactory(username="bob"), created_at=now - timedelta(days=45))

    def shown(query):
        return set(row_ids(operator_client.get(f"{LIST}?{query}")))

    assert shown("created=today") <= {str(recent.pk)} and str(recent.pk) in shown("created=today")
    assert shown("created=7d") == {str(recent.pk), str(week.pk)}
    assert shown("created=30d") == {str(recent.pk), str(week.pk), str(month.pk)}
    assert shown("pipeline=alpha") == {str(recent.pk)}
    assert shown("username=ann") == {str(recent.pk)}
    assert shown("action=sync") == {str(recent.pk)}
    assert shown("worker=box:1:aa") == {str(recent.pk)}
    assert len(shown("username=bob")) == 3


def test_search_and_bad_filters(operator_client):
    job = JobFactory(id=uuid.UUID("abcdef12-0000-4000-8000-000000000000"), username="zed")
    JobFactory(username="amy")
    assert row_ids(operator_client.get(LIST + "?q=abcdef12")) == [str(job.pk)]
    assert row_ids(operator_client.get(LIST + f"?q={job.pk}")) == [str(job.pk)]
    assert row_ids(operator_client.get(LIST + "?q=ze")) == [str(job.pk)]
    response = operator_client.get(LIST + "?status=sleeping")
    assert response.status_code == 302 and response["Location"].endswith("?e=1")
    assert operator_client.get(LIST + "?created=yesterday").status_code == 302


def test_sorting_by_duration_puts_jobs_without_one_last_both_ways(operator_client):
    fast, slow = JobFactory(duration_ms=10, status="completed"), JobFactory(duration_ms=900, status="completed")
    waiting = JobFactory(status="queued")
    # list_display column 10 is "duration" (0 is the checkbox).
    assert row_ids(operator_client.get(LIST + "?o=-10")) == [str(slow.pk), str(fast.pk), str(waiting.pk)]
    assert row_ids(operator_client.get(LIST + "?o=10")) == [str(fast.pk), str(slow.pk), str(waiting.pk)]
    high, low = JobFactory(priority=9), JobFactory(priority=1)
    assert row_ids(operator_client.get(LIST + "?o=-4"))[0] == str(high.pk)
    assert row_ids(operator_client.get(LIST + "?o=4"))[0] in {str(j.pk) for j in (fast, slow, waiting)}
    assert str(low.pk) in row_ids(operator_client.get(LIST + "?o=4"))


def test_a_row_is_compact_and_truncates_long_errors(operator_client):
    job = JobFactory(status="failed", error_message="E" * 500 + "\nTraceback ...", username="u" * 60)
    html = operator_client.get(LIST).content.decode()
    assert f'<code title="{job.pk}">{str(job.pk)[:8]}</code>' in html
    assert ">" + "E" * 70 + "</span>" in html
    assert "E" * 71 + "<" not in html
    assert ">" + "u" * 24 + "</span>" in html


# --- actions ------------------------------------------------------------------------------------


def act(client, action, ids, query="", **extra):
    data = {"action": action, ACTION_CHECKBOX_NAME: [str(i) for i in ids], "index": 0, **extra}
    return client.post(f"{LIST}?{query}", data, follow=False)


def test_cancel_selected_jobs_goes_through_the_service_with_an_audit_row_each(operator_client, stub_broker):
    queued, running, done = JobFactory(status="queued"), JobFactory(status="processing"), JobFactory(status="completed")
    response = act(operator_client, "cancel_jobs", [queued.pk, running.pk, done.pk])
    assert response.status_code == 302
    assert [Job.objects.get(pk=j.pk).status for j in (queued, running, done)] == [
        "cancelled",
        "cancelling",
        "completed",
    ]
    rows = AuditLog.objects.filter(action="admin.job.cancel")
    assert set(rows.values_list("resource_id", flat=True)) == {str(queued.pk), str(running.pk)}
    assert set(rows.values_list("principal", flat=True)) == {"op"}
    messages = [str(m) for m in response.wsgi_request._messages]
    assert any("skipped 1 whose state does not allow it (1 completed)" in m for m in messages)


def test_retry_and_retry_from_start_and_requeue_selected(
    operator_client, stub_broker, django_capture_on_commit_callbacks
):
    failed, cancelled = JobFactory(status="failed"), JobFactory(status="cancelled")
    stuck = JobFactory(status="processing", locked_by="gone:1:aa/T-1", attempts=1)
    with django_capture_on_commit_callbacks(execute=True):
        act(operator_client, "retry_jobs", [failed.pk])
        act(operator_client, "retry_jobs_from_start", [cancelled.pk])
        act(operator_client, "requeue_jobs", [stuck.pk])
    assert {Job.objects.get(pk=j.pk).status for j in (failed, cancelled, stuck)} == {"queued"}
    assert Job.objects.get(pk=cancelled.pk).checkpoints_since is not None
    assert set(AuditLog.objects.values_list("action", flat=True)) == {"admin.job.retry", "admin.job.requeue"}


def test_an_action_on_all_matching_rows_starts_a_tracked_background_operation(
    operator_client, stub_broker, django_capture_on_commit_callbacks
):
    failed = [JobFactory(status="failed") for _ in range(3)]
    JobFactory(status="completed")
    with django_capture_on_commit_callbacks(execute=True):
        response = act(operator_client, "retry_jobs", [failed[0].pk], query="status=failed", select_across="1")
    operation = BulkOperation.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/admin/jobs/bulkoperation/{operation.pk}/change/"
    assert (operation.kind, operation.criteria["statuses"], operation.requested_by.username) == (
        "retry", ["failed"], "op",
    )  # fmt: skip
    assert operation.criteria["until"] is not None
    assert [m.actor_name for m in map(dramatiq.Message.decode, stub_broker.queues["maintenance"].queue)] == [
        "jobs_bulk_operation"
    ]
    assert {Job.objects.get(pk=j.pk).status for j in failed} == {"failed"}  # the request itself changed nothing
    page = operator_client.get(response["Location"]).content.decode()
    assert "Retry (resume)" in page and "status failed" in page and "Stop this operation" in page


def test_more_selected_rows_than_a_request_handles_go_to_the_background(operator_client, pipeline, monkeypatch):
    from jobs import admin as jobs_admin

    monkeypatch.setattr(jobs_admin, "SYNC_ACTION_MAX", 2)
    jobs = [JobFactory(pipeline=pipeline, status="queued") for _ in range(3)]
    act(operator_client, "cancel_jobs", [j.pk for j in jobs])
    operation = BulkOperation.objects.get()
    assert sorted(operation.criteria["ids"]) == sorted(str(j.pk) for j in jobs)
    assert {j.status for j in Job.objects.all()} == {"queued"}


def test_delete_asks_first_then_deletes_with_audit(operator_client):
    job, held = JobFactory(status="failed"), JobFactory(status="processing")
    confirm = act(operator_client, "delete_jobs", [job.pk])
    assert confirm.status_code == 200 and "Delete 1 selected job(s)?" in confirm.content.decode()
    assert Job.objects.filter(pk=job.pk).exists()
    act(operator_client, "delete_jobs", [job.pk, held.pk], post="yes")
    assert not Job.objects.filter(pk=job.pk).exists()
    assert Job.objects.filter(pk=held.pk).exists()
    assert AuditLog.objects.get(action="admin.job.delete").resource_id == str(job.pk)


# --- the job page ---------------------------------------------------------------------------------


def test_the_job_page_is_one_ledger_without_secrets_or_save_buttons(operator_client, operator):
    job = JobFactory(status="completed", webhook_url="https://hooks.example.com/x", webhook_secret="s3cret-value",
                     attempts=2, locked_by="box:2:bb/Thread-1")  # fmt: skip
    JobEventFactory(job=job, type=JobEventType.STARTED, data={"attempt": 1, "worker": "box:1:aa/Thread-3"})
    StageRunFactory(job=job, status="failed", error="ValueError: bad", traceback="Traceback (most recent call last):\n"
                    "  File x\nValueError: bad", job_attempt=1, duration_ms=12)  # fmt: skip
    StageRunFactory(job=job, attempt=2, job_attempt=2, output={"words": 3}, duration_ms=7)
    JobResult.objects.create(job=job, result={"answer": 42, "items": list(range(3))}, size_bytes=40)
    AuditLog.objects.create(principal="svc", principal_type="service", action="jobs.job.retry",
                            resource_type="job", resource_id=str(job.pk))  # fmt: skip

    html = operator_client.get(f"{LIST}{job.pk}/change/").content.decode()

    assert "s3cret-value" not in html and "the secret is never shown" in html
    assert 'name="_save"' not in html and 'value="Save' not in html
    assert "Timeline" in html and "Attempt 1 claimed" in html and "box:1:aa/Thread-3" in html
    assert '<details class="js-tb"><summary>traceback</summary>' in html and "ValueError: bad" in html
    assert "1 · <code>box:1:aa/Thread-3</code>" in html and "2 · <code>box:2:bb/Thread-1</code>" in html
    assert "&quot;answer&quot;: 42" in html
    assert "jobs.job.retry" in html  # the audit trail
    assert "Why isn't this job running?" not in html
    download = operator_client.get(f"{LIST}{job.pk}/result/")
    assert download["Content-Disposition"] == f'attachment; filename="result-{job.pk}.json"'
    assert json.loads(download.content) == {"answer": 42, "items": [0, 1, 2]}


def test_a_large_or_file_result_is_cut_with_a_download_link(operator_client, settings):
    job = JobFactory(status="completed")
    result = JobResult(job=job, size_bytes=60_000)
    result.result_file.save(f"{job.pk}.json", ContentFile(json.dumps({"text": "x" * 60_000}).encode()), save=False)
    result.save()
    html = operator_client.get(f"{LIST}{job.pk}/change/").content.decode()
    assert "… (cut here: download the full result)" in html
    assert html.count("x") < 25_000
    assert (
        json.loads(b"".join(operator_client.get(f"{LIST}{job.pk}/result/").streaming_content))["text"] == "x" * 60_000
    )


def test_a_waiting_job_says_why_and_offers_the_actions_its_state_allows(operator_client):
    job = JobFactory(status="queued", queued_at=timezone.now())
    html = operator_client.get(f"{LIST}{job.pk}/change/").content.decode()
    assert "Why isn't this job running?" in html and "No live worker consumes queue jobs." in html
    assert 'data-action="cancel"' in html and 'data-action="requeue"' in html
    assert 'data-action="retry"' not in html and 'data-action="delete"' in html
    assert "data-refresh" in html


def test_the_job_page_buttons_act_through_the_services(
    operator_client, stub_broker, django_capture_on_commit_callbacks
):
    running, failed = JobFactory(status="processing", locked_by="box:1:aa/T"), JobFactory(status="failed")
    response = operator_client.post(f"{LIST}{running.pk}/act/cancel/")
    assert response.status_code == 302 and response["Location"] == f"{LIST}{running.pk}/change/"
    assert Job.objects.get(pk=running.pk).status == "cancelling"
    with django_capture_on_commit_callbacks(execute=True):
        operator_client.post(f"{LIST}{failed.pk}/act/retry/")
    assert Job.objects.get(pk=failed.pk).status == "queued"
    done = JobFactory(status="completed")
    response = operator_client.post(f"{LIST}{done.pk}/act/cancel/", follow=True)
    assert "A completed job cannot take that action." in response.content.decode()
    assert operator_client.get(f"{LIST}{done.pk}/act/cancel/").status_code == 405
    assert operator_client.post(f"{LIST}{done.pk}/act/delete/")["Location"] == f"{LIST}{done.pk}/delete/"
    operator_client.post(f"{LIST}{done.pk}/delete/", {"post": "yes"})
    assert not Job.objects.filter(pk=done.pk).exists()
    assert AuditLog.objects.filter(action="admin.job.delete", resource_id=str(done.pk)).exists()


def test_an_unknown_job_redirects_to_the_admin(operator_client):
    response = operator_client.get(f"{LIST}{uuid.uuid4()}/change/")
    assert response.status_code == 302


# --- failure triage, workers, bulk operations, dead letters ----------------------------------------


def test_failure_triage_groups_errors_and_retries_a_group_in_the_background(operator_client, stub_broker):
    alpha = PipelineFactory(name="alpha")
    for n in range(3):
        JobFactory(pipeline=alpha, status="failed", error_message=f"KeyError: 'k{n}'", completed_at=timezone.now())
    JobFactory(pipeline=alpha, status="failed", error_message="Timeout", completed_at=timezone.now())
    html = operator_client.get(f"{LIST}failures/").content.decode()
    assert "KeyError: &lt;str&gt;" in html and ">3</a>" in html and "Timeout" in html
    assert "?status=failed&amp;created=24h&amp;pipeline=alpha&amp;error=KeyError%3A%20%3Cstr%3E" in html
    listed = operator_client.get(LIST + "?status=failed&created=24h&pipeline=alpha&error=KeyError%3A%20%3Cstr%3E")
    assert len(row_ids(listed)) == 3

    operator_client.post(f"{LIST}failures/retry/", {"window": "24h", "pipeline": "alpha", "error": "KeyError: <str>"})
    operation = BulkOperation.objects.get()
    assert (operation.kind, operation.criteria["error_group"], operation.criteria["pipeline"]) == (
        "retry", "KeyError: <str>", "alpha",
    )  # fmt: skip


def test_the_workers_page_shows_what_each_worker_holds_and_finished(operator_client):
    now = timezone.now()
    worker = WorkerProcessFactory(worker_id="box:1:aa", threads=8)
    WorkerProcessFactory(worker_id="box:2:bb", last_seen_at=now - timedelta(minutes=10))
    JobFactory(status="processing", locked_by="box:1:aa/Thread-1")
    JobFactory(status="completed", locked_by="box:1:aa/Thread-2", completed_at=now - timedelta(minutes=3))
    JobFactory(status="failed", locked_by="box:1:aa/Thread-2", completed_at=now - timedelta(minutes=3))
    html = operator_client.get("/admin/jobs/workerprocess/").content.decode()
    assert '<span class="js-ok">1</span> / <span class="js-bad">1</span>' in html
    assert 'href="/admin/jobs/job/?worker=box%3A1%3Aaa&amp;status=active">1</a>' in html
    assert 'js-badge js-bad">stale' in html
    stale_only = operator_client.get("/admin/jobs/workerprocess/?state=stale").content.decode()
    assert "box:2:bb" in stale_only and "box:1:aa" not in stale_only
    detail = operator_client.get(f"/admin/jobs/workerprocess/{worker.pk}/change/").content.decode()
    assert "Thread-1" not in detail or "processing" in detail
    assert 'name="_save"' not in detail


def test_a_bulk_operation_can_be_stopped_from_its_page(operator_client):
    operation = BulkOperation.objects.create(kind="retry", criteria={}, description="status failed")
    response = operator_client.post(f"/admin/jobs/bulkoperation/{operation.pk}/stop/")
    assert response.status_code == 302
    operation.refresh_from_db()
    assert operation.status == "cancelled" and operation.stop_requested
    assert AuditLog.objects.filter(action="admin.bulk_operation.stop").exists()


def test_dead_letters_page_lists_and_requeues_the_stub_brokers_dead_letters(operator_client, stub_broker):
    from jobs.actors import jobs_recover

    message = jobs_recover.message()
    stub_broker.dead_letters_by_queue["maintenance"].append(dramatiq.broker.MessageProxy(message))
    html = operator_client.get("/admin/dead-letters/").content.decode()
    assert message.message_id in html and "jobs_recover" in html
    response = operator_client.post(
        "/admin/dead-letters/maintenance/requeue/", {"message_id": [message.message_id]}, follow=True
    )
    assert "1 dead letter(s) of queue maintenance requeued." in response.content.decode()
    assert stub_broker.queues["maintenance"].qsize() == 1
    assert operator_client.get("/admin/dead-letters/maintenance/requeue/").status_code == 405


def test_a_pipeline_without_jobs_in_a_window_shows_dashes(operator_client):
    old = PipelineFactory(name="old-one")
    at(JobFactory(pipeline=old, status="completed", duration_ms=5), created_at=timezone.now() - timedelta(days=2))
    html = operator_client.get("/admin/").content.decode()
    row = re.search(r'<tr data-pipeline="old-one">(.*?)</tr>', html, re.S).group(1)
    assert row.count("\N{EN DASH}") == 6 and "100.0 %" in row
