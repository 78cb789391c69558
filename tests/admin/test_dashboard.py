"""The admin's read functions (jobs.dashboard) against data the tests create."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.utils import timezone

from audit.models import AuditLog
from jobs import dashboard, snapshots
from jobs.dashboard import JobCriteria, error_group_key, error_group_prefix, job_search
from jobs.models import DashboardSnapshot, Job, JobEventType, JobStatus
from tests.admin.conftest import job_retried_twice
from tests.factories import (
    JobEventFactory,
    JobFactory,
    PipelineFactory,
    WorkerProcessFactory,
)

pytestmark = pytest.mark.django_db


def ids(jobs):
    return {job.pk for job in jobs}


def job_with_id(hex_id: str, **fields):
    return JobFactory(id=uuid.UUID(hex_id), **fields)


def at(job, **fields):
    Job.objects.filter(pk=job.pk).update(**fields)
    job.refresh_from_db()
    return job


# --- search -----------------------------------------------------------------------------


def test_full_uuid_matches_exactly_that_job_in_any_case():
    wanted = job_with_id("3f2a9c1e-4b5d-4c6e-8f70-0123456789ab")
    job_with_id("3f2a9c1e-4b5d-4c6e-8f70-0123456789ac")
    assert ids(job_search(Job.objects.all(), " 3F2A9C1E-4B5D-4C6E-8F70-0123456789AB ")) == {wanted.pk}


def test_id_prefix_matches_the_jobs_whose_id_starts_with_it_dashes_or_not():
    first = job_with_id("3f2a9c1e-4b5d-4c6e-8f70-0123456789ab")
    second = job_with_id("3f2a9c1e-ffff-4c6e-8f70-0123456789ab")
    job_with_id("3f2a9c1f-0000-4c6e-8f70-0123456789ab")
    assert ids(job_search(Job.objects.all(), "3f2a9c1e")) == {first.pk, second.pk}
    assert ids(job_search(Job.objects.all(), "3f2a9c1e-4b")) == {first.pk}


def test_text_matches_username_or_action_by_prefix():
    alice = JobFactory(username="alice.smith", action="import")
    reporter = JobFactory(username="bob", action="report-daily")
    capital = JobFactory(username="Alice", action="sync")
    JobFactory(username="malice", action="export")
    # Case-sensitive on PostgreSQL (the index is a plain prefix index); SQLite's LIKE ignores ASCII case.
    expected = {alice.pk} if connection.vendor == "postgresql" else {alice.pk, capital.pk}
    assert ids(job_search(Job.objects.all(), "alice")) == expected
    assert ids(job_search(Job.objects.all(), "report")) == {reporter.pk}
    assert ids(job_search(Job.objects.all(), "nobody")) == set()


def test_hex_looking_text_matches_id_prefixes_and_usernames_alike():
    by_name = JobFactory(username="abc-user")
    by_id = job_with_id("abcdef00-0000-4000-8000-000000000000")
    assert ids(job_search(Job.objects.all(), "abc")) == {by_name.pk, by_id.pk}


# --- criteria -----------------------------------------------------------------------------


def test_status_groups_expand_as_the_api_does_and_unknown_statuses_are_refused():
    assert JobCriteria.from_params({"status": "running"}).statuses == ("processing", "queued")
    assert JobCriteria.from_params({"status": "cancelling"}).statuses == ("cancelling",)
    with pytest.raises(ValueError):
        JobCriteria.from_params({"status": "sleeping"})
    with pytest.raises(ValueError):
        JobCriteria.from_params({"created": "yesterday"})
    with pytest.raises(ValueError):
        JobCriteria.from_params({"has_error": "maybe"})


def test_today_starts_at_midnight_utc_and_day_periods_roll():
    now = timezone.now()
    midnight = datetime.combine(now.astimezone(UTC).date(), datetime.min.time(), tzinfo=UTC)
    assert JobCriteria.from_params({"created": "today"}).created_since == midnight
    week = JobCriteria.from_params({"created": "7d"}).created_since
    assert abs((now - timedelta(days=7) - week).total_seconds()) < 5


def test_each_criterion_narrows_the_jobs():
    pipeline, other = PipelineFactory(name="alpha"), PipelineFactory(name="beta")
    match = JobFactory(
        pipeline=pipeline, status=JobStatus.FAILED, username="ann", action="sync", error_message="boom",
        locked_by="w1:1:aa/Thread-1",
    )  # fmt: skip
    JobFactory(pipeline=other, status=JobStatus.FAILED, username="ann", action="sync", error_message="boom")
    JobFactory(pipeline=pipeline, status=JobStatus.COMPLETED, username="ann", action="sync")
    JobFactory(pipeline=pipeline, status=JobStatus.FAILED, username="annie", action="sync", error_message="x")
    JobFactory(pipeline=pipeline, status=JobStatus.FAILED, username="ann", action="sync", locked_by="w10:1:aa/T-1")
    old = JobFactory(pipeline=pipeline, status=JobStatus.FAILED, username="ann", action="sync", error_message="boom")
    at(old, created_at=timezone.now() - timedelta(days=2))

    params = {"status": "failed", "pipeline": "alpha", "username": "ann", "action": "sync", "created": "24h"}
    criteria = JobCriteria.from_params({**params, "has_error": "yes", "worker": "w1:1:aa"})
    assert ids(criteria.apply(Job.objects.all())) == {match.pk}
    assert ids(JobCriteria.from_params({**params, "has_error": "no"}).apply(Job.objects.all())) != set()
    assert match.pk not in ids(JobCriteria.from_params({**params, "has_error": "no"}).apply(Job.objects.all()))


def test_until_and_owner_and_ids_bound_a_snapshot():
    owner = uuid.uuid4()
    mine = JobFactory(user_id=owner)
    JobFactory()
    snapshot = JobCriteria(owner=str(owner), until=timezone.now())
    later = JobFactory(user_id=owner)
    assert ids(snapshot.apply(Job.objects.all())) == {mine.pk}
    assert later.pk not in ids(snapshot.apply(Job.objects.all()))
    assert ids(JobCriteria(ids=(str(later.pk),)).apply(Job.objects.all())) == {later.pk}


def test_criteria_survive_a_round_trip_through_json():
    criteria = JobCriteria.from_params(
        {"status": "failed", "created": "today", "pipeline": "p", "has_error": "yes", "error": "KeyError: <str>"}
    ).narrowed(until=timezone.now(), owner="u", ids=("a",))
    assert JobCriteria.from_json(criteria.to_json()) == criteria
    assert "status failed" in criteria.describe() and "pipeline p" in criteria.describe()


# --- failure groups -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "key"),
    [
        ("Stage 'parse' failed (attempt 1 of 3): KeyError: 'customer_17'", "Stage <str> failed: KeyError: <str>"),
        (
            "HTTPError: 503 for url https://api.example.com/orders/12?x=1",
            "HTTPError: <n> for url <url>",
        ),
        (
            "Worker lost: worker gone: box:123:ab12cd silent for 45 s",
            "Worker lost: worker gone: <worker> silent for <n> s",
        ),
        ("job 3f2a9c1e-4b5d-4c6e-8f70-0123456789ab missing\nTraceback ...", "job <uuid> missing"),
    ],
)
def test_error_group_key_replaces_the_variable_parts(message, key):
    assert error_group_key(message) == key


def test_the_group_prefix_is_the_literal_start_every_member_shares():
    assert error_group_prefix("Stage <str> failed: KeyError: <str>") == "Stage "
    assert error_group_prefix("Out of memory") == "Out of memory"


def test_failure_groups_merge_errors_that_differ_in_ids_per_pipeline():
    alpha, beta = PipelineFactory(name="alpha"), PipelineFactory(name="beta")
    now = timezone.now()
    for n, minutes in ((17, 50), (42, 5), (99, 30)):
        at(
            JobFactory(pipeline=alpha, status=JobStatus.FAILED, error_message=f"KeyError: 'customer_{n}'"),
            completed_at=now - timedelta(minutes=minutes),
        )
    newest = Job.objects.get(error_message="KeyError: 'customer_42'")
    at(JobFactory(pipeline=beta, status=JobStatus.FAILED, error_message="KeyError: 'x'"), completed_at=now)
    at(JobFactory(pipeline=alpha, status=JobStatus.FAILED, error_message="Timeout"), completed_at=now)
    old = JobFactory(pipeline=alpha, status=JobStatus.FAILED, error_message="KeyError: 'old'")
    at(old, created_at=now - timedelta(days=3))
    JobFactory(pipeline=alpha, status=JobStatus.COMPLETED, error_message="")

    groups = dashboard.failure_groups(since=now - timedelta(hours=24))

    assert [(g.pipeline, g.error, g.count) for g in groups] == [
        ("alpha", "KeyError: <str>", 3),
        ("alpha", "Timeout", 1),
        ("beta", "KeyError: <str>", 1),
    ]
    top = groups[0]
    assert top.first_seen == now - timedelta(minutes=50)
    assert top.last_seen == now - timedelta(minutes=5)
    assert top.sample_job_id == str(newest.pk)


# --- charts and counts ---------------------------------------------------------------------


def test_throughput_counts_completed_and_failed_per_minute_of_the_last_hour():
    now = timezone.now().replace(second=30, microsecond=0)
    for status, minutes_ago in (("completed", 0), ("completed", 0), ("failed", 0), ("completed", 10), ("failed", 61)):
        at(JobFactory(status=status), completed_at=now - timedelta(minutes=minutes_ago))
    at(JobFactory(status=JobStatus.CANCELLED), completed_at=now)

    buckets = dashboard.throughput_per_minute(now=now)

    assert len(buckets) == 60
    assert buckets[-1] == {"at": now.replace(second=0), "completed": 2, "failed": 1}
    assert buckets[-11]["completed"] == 1
    assert sum(b["completed"] + b["failed"] for b in buckets) == 4


def test_daily_history_has_thirty_days_counts_today_and_takes_the_stored_closed_days():
    now = timezone.now()
    at(JobFactory(status=JobStatus.COMPLETED), completed_at=now - timedelta(days=3))
    at(JobFactory(status=JobStatus.FAILED), completed_at=now - timedelta(days=40))
    history = dashboard.daily_history(now=now)
    assert len(history) == 30
    assert history[-1]["at"] == now.replace(hour=0, minute=0, second=0, microsecond=0)
    assert sum(b["completed"] for b in history) == 1 and sum(b["failed"] for b in history) == 0
    stored = dashboard.closed_days(now=now)
    assert len(stored) == 29

    at(JobFactory(status=JobStatus.FAILED), completed_at=now)
    at(JobFactory(status=JobStatus.FAILED), completed_at=now - timedelta(days=2))
    with_stored = dashboard.daily_history(now=now, closed=stored)
    assert with_stored[-1]["failed"] == 1  # today is counted on every call
    assert sum(b["failed"] for b in with_stored[:-1]) == 0  # the stored days are taken as they are
    assert sum(b["failed"] for b in dashboard.daily_history(now=now)) == 2


def test_the_dashboard_snapshot_is_stored_reused_while_fresh_and_recomputed_when_stale():
    JobFactory(status=JobStatus.COMPLETED, duration_ms=10)
    now = timezone.now()
    first, computed_at = snapshots.dashboard_snapshot(now=now)
    assert computed_at == now and first["stats_7d"]["counts"]["completed"] == 1
    assert DashboardSnapshot.objects.get(key="dashboard").data["stats_7d"]["total"] == 1

    JobFactory(status=JobStatus.COMPLETED, duration_ms=20)
    again, again_at = snapshots.dashboard_snapshot(now=now + timedelta(minutes=1))
    assert again_at == now and again["stats_7d"]["counts"]["completed"] == 1
    assert [d["at"] for d in again["closed_days"]] == [d["at"] for d in first["closed_days"]]

    later = now + snapshots.MAX_AGE + timedelta(seconds=1)
    stale, stale_at = snapshots.dashboard_snapshot(now=later)
    assert stale_at == later and stale["stats_7d"]["counts"]["completed"] == 2

    JobFactory(status=JobStatus.FAILED)
    snapshots.jobs_dashboard_snapshot()  # what the scheduler runs every minute
    assert DashboardSnapshot.objects.get(key="dashboard").data["stats_7d"]["counts"]["failed"] == 1


def test_group_counts_and_now_counts():
    JobFactory(status=JobStatus.QUEUED)
    JobFactory(status=JobStatus.PROCESSING)
    JobFactory(status=JobStatus.PENDING)
    now_counts = dashboard.status_counts_now()
    assert now_counts["queued"] == (1, False) and now_counts["processing"] == (1, False)
    assert "completed" not in now_counts
    counts = {"queued": 2, "processing": 1, "completed": 5, "failed": 1, "pending": 3}
    assert dashboard.group_counts(counts) == {"running": 3, "completed": 5, "failed": 1, "all": 12}


def test_pipeline_table_lines_up_windows_per_pipeline():
    stats = {
        "1h": {"pipelines": [{"pipeline": "b", "total": 1}]},
        "24h": {"pipelines": [{"pipeline": "a", "total": 2}, {"pipeline": "b", "total": 3}]},
    }
    rows = dashboard.pipeline_table(stats)
    assert [r["pipeline"] for r in rows] == ["a", "b"]
    assert rows[0]["windows"] == {"1h": None, "24h": {"pipeline": "a", "total": 2}}


# --- workers -------------------------------------------------------------------------------


def test_worker_state_and_stale_workers(settings):
    settings.WORKER_DEAD_AFTER_SECONDS = 30
    now = timezone.now()
    alive = WorkerProcessFactory(last_seen_at=now)
    stale = WorkerProcessFactory(last_seen_at=now - timedelta(minutes=5))
    stopped = WorkerProcessFactory(last_seen_at=now - timedelta(minutes=5), stopped_at=now)
    WorkerProcessFactory(last_seen_at=now - timedelta(days=3))
    assert [dashboard.worker_state(w, now=now) for w in (alive, stale, stopped)] == ["alive", "stale", "stopped"]
    assert list(dashboard.stale_workers(now=now)) == [stale]


def test_worker_activity_counts_held_jobs_and_the_last_hours_finished_jobs_per_worker():
    now = timezone.now()
    one, two = WorkerProcessFactory(worker_id="box:1:aa"), WorkerProcessFactory(worker_id="box:11:aa")
    JobFactory(status=JobStatus.PROCESSING, locked_by="box:1:aa/Thread-1")
    JobFactory(status=JobStatus.CANCELLING, locked_by="box:1:aa/Thread-2")
    JobFactory(status=JobStatus.PROCESSING, locked_by="box:11:aa/Thread-1")
    at(JobFactory(status=JobStatus.COMPLETED, locked_by="box:1:aa/Thread-1"), completed_at=now - timedelta(minutes=5))
    at(JobFactory(status=JobStatus.FAILED, locked_by="box:1:aa/Thread-2"), completed_at=now - timedelta(minutes=59))
    at(JobFactory(status=JobStatus.COMPLETED, locked_by="box:1:aa/Thread-1"), completed_at=now - timedelta(hours=2))

    activity = dashboard.worker_activity([one.worker_id, two.worker_id], now=now)

    assert activity == {
        "box:1:aa": {"held": 2, "completed": 1, "failed": 1},
        "box:11:aa": {"held": 1, "completed": 0, "failed": 0},
    }
    assert [j.locked_by for j in dashboard.jobs_held_by("box:11:aa")] == ["box:11:aa/Thread-1"]


# --- the ledger ------------------------------------------------------------------------------


def test_the_ledger_orders_every_event_stage_and_request_to_the_millisecond_with_each_attempts_worker():
    job = job_retried_twice()
    audit = AuditLog.objects.create(
        principal="op", principal_type="user", action="admin.job.retry", resource_type="job",
        resource_id=str(job.pk), request_details={"operation": {"from_start": False}},
    )  # fmt: skip
    AuditLog.objects.filter(pk=audit.pk)._complete_response(status_code=200)

    ledger = dashboard.job_ledger(job, audit_rows=[audit])

    assert ledger["attempt_workers"] == {1: "box:1:aa/Thread-1", 2: "box:2:bb/Thread-4", 3: "box:3:cc/Thread-1"}
    stage = ["Stage 1 “fetch” started", "Stage 1 “fetch” failed", "Retrying"]
    assert [e.title for e in ledger["entries"]] == [
        "Created",
        "Attempt 1 claimed", *stage,
        "Attempt 2 claimed", *stage,
        "Attempt 3 claimed", "Stage 1 “fetch” started", "Stage 1 “fetch” completed",
        "Completed",
        "Retry requested by op",
    ]  # fmt: skip
    claims = [e for e in ledger["entries"] if e.title.startswith("Attempt")]
    assert [(e.attempt, e.worker, e.offset_ms) for e in claims] == [
        (1, "box:1:aa/Thread-1", 20),
        (2, "box:2:bb/Thread-4", 2100),
        (3, "box:3:cc/Thread-1", 6200),
    ]
    retries = [e for e in ledger["entries"] if e.title == "Retrying"]
    assert len(retries) == 2 and "backoff 1890 ms" in retries[0].detail
    finished = [e for e in ledger["entries"] if e.source == "stage" and "failed" in e.title]
    assert [e.worker for e in finished] == ["box:1:aa/Thread-1", "box:2:bb/Thread-4"]
    assert ledger["entries"][-1].detail == "from_start: False"
    times = [e.at for e in ledger["entries"]]
    assert times == sorted(times)


def test_a_job_without_events_gets_its_timeline_from_its_timestamps():
    job = JobFactory(status=JobStatus.FAILED, attempts=1, locked_by="box:9:ff/Thread-2", error_message="boom")
    now = timezone.now()
    at(
        job,
        created_at=now - timedelta(seconds=5),
        queued_at=now - timedelta(seconds=4),
        started_at=now - timedelta(seconds=3),
        completed_at=now,
    )
    entries = dashboard.job_ledger(job)["entries"]
    assert [e.title for e in entries] == ["Created", "Sent to the broker", "Started", "Failed"]
    assert entries[2].worker == "box:9:ff/Thread-2"
    assert entries[-1].tone == "bad" and entries[-1].detail == "boom"


# --- why isn't this job running? ------------------------------------------------------------------


DEPTHS = {"jobs": {"ready": 4, "delayed": 1, "in_flight": 2, "dead": 0}}


def reasons(job, **kwargs):
    kwargs.setdefault("depths", DEPTHS)
    return [r.text for r in dashboard.job_wait_reasons(job, **kwargs)]


def test_a_queued_job_is_behind_the_earlier_jobs_of_its_band_and_needs_a_consumer():
    now = timezone.now()
    ahead = [at(JobFactory(priority=2), queued_at=now - timedelta(minutes=m)) for m in (5, 4)]
    at(JobFactory(priority=5), queued_at=now - timedelta(minutes=9))  # another band
    job = at(JobFactory(priority=2), queued_at=now - timedelta(minutes=1))
    text = reasons(job, now=now)
    assert any(f"behind {len(ahead)} job(s) in queue jobs" in t for t in text)
    assert "No live worker consumes queue jobs." in text
    assert any("4 ready, 1 delayed, 2 in flight" in t for t in text)

    WorkerProcessFactory(queues=["jobs"], threads=8)
    assert any("1 live worker(s) consume jobs, 8 threads." in t for t in reasons(job, now=now))


def test_scheduled_retrying_and_pending_jobs_say_when_and_why():
    now = timezone.now()
    scheduled = JobFactory(status=JobStatus.SCHEDULED, run_at=now + timedelta(minutes=10))
    assert any(t.startswith("Scheduled until") and "(in 10 min)" in t for t in reasons(scheduled, now=now))

    retrying = JobFactory(status=JobStatus.RETRYING, run_at=now + timedelta(seconds=30), error_message="boom")
    JobEventFactory(job=retrying, type=JobEventType.RETRYING, data={"delay_ms": 30000, "attempt": 1})
    text = reasons(retrying, now=now)
    assert any(t.startswith("Retrying at") and "after a backoff of 30000 ms" in t for t in text)
    assert "Last error: boom" in text

    pending = JobFactory(status=JobStatus.PENDING)
    assert any(t.startswith("Not yet handed to the broker") for t in reasons(pending, now=now))


def test_an_unreachable_broker_is_named():
    job = JobFactory(status=JobStatus.QUEUED)
    text = reasons(job, depths=None, broker_error="Redis is unavailable: refused")
    assert "The broker is unreachable: Redis is unavailable: refused" in text


def test_a_held_job_names_its_worker_and_how_old_its_heartbeat_is(settings):
    settings.WORKER_DEAD_AFTER_SECONDS = 30
    now = timezone.now()
    WorkerProcessFactory(worker_id="box:5:ee", last_seen_at=now - timedelta(minutes=3))
    job = JobFactory(
        status=JobStatus.PROCESSING, locked_by="box:5:ee/Thread-1", heartbeat_at=now - timedelta(minutes=3)
    )
    text = reasons(job, now=now)
    assert text[0] == "Held by worker box:5:ee/Thread-1, whose last heartbeat was 3 min ago (stale)."
    assert text[1].startswith("The job's own heartbeat is 3 min old")


def test_failure_groups_of_long_periods_are_stored_and_regrouped_when_stale():
    pipeline = PipelineFactory(name="alpha")
    JobFactory(pipeline=pipeline, status=JobStatus.FAILED, error_message="KeyError: 'a'")
    now = timezone.now()
    groups, at_ = snapshots.stored_failure_groups(period="7d", now=now)
    assert (at_, [(g.error, g.count) for g in groups]) == (now, [("KeyError: <str>", 1)])
    JobFactory(pipeline=pipeline, status=JobStatus.FAILED, error_message="KeyError: 'b'")
    again, again_at = snapshots.stored_failure_groups(period="7d", now=now + timedelta(minutes=1))
    assert again_at == now and again[0].count == 1 and again[0].first_seen == groups[0].first_seen
    snapshots.jobs_dashboard_snapshot()
    refreshed, _ = snapshots.stored_failure_groups(period="7d")
    assert refreshed[0].count == 2
    assert DashboardSnapshot.objects.filter(key="failures:30d").exists()
