"""Recovery: the boundary table of recover_jobs, heartbeats, concurrent runs."""

import threading
import time
from datetime import timedelta
from io import StringIO

import dramatiq
import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from audit.models import AuditLog
from jobs.middleware import JobHeartbeat
from jobs.models import Job, JobStatus, StageRun, StageRunStatus, WorkerProcess
from jobs.recovery import jobs_recover
from jobs.workers import process_id, worker_beat
from tests.factories import JobFactory

STUCK = timedelta(minutes=15)
ORPHAN = timedelta(minutes=15)


def _ago(**kwargs):
    return timezone.now() - timedelta(**kwargs)


def _worker(worker_id, *, seen, stopped=None):
    return WorkerProcess.objects.create(
        worker_id=worker_id, hostname="h", pid=1, started_at=_ago(hours=1), last_seen_at=seen, stopped_at=stopped
    )


def _held(status=JobStatus.PROCESSING, *, worker="host:1:abc", beat, attempts=1, max_attempts=3):
    return JobFactory(
        status=status,
        locked_by=f"{worker}/Thread-1",
        locked_at=beat,
        heartbeat_at=beat,
        started_at=beat,
        attempts=attempts,
        max_attempts=max_attempts,
    )


def _recover(**kwargs):
    return {a.job_id: a for a in jobs_recover(stuck_timeout=STUCK, orphan_timeout=ORPHAN, **kwargs)}


@pytest.fixture
def sent(stub_broker):
    """Job ids sent to the broker during the test."""

    def ids():
        from dramatiq import Message

        found = []
        for name in ("jobs", "jobs.DQ"):
            queue = stub_broker.queues.get(name)
            while queue is not None and not queue.empty():
                found.append(Message.decode(queue.get()).args[0])
                queue.task_done()
        return found

    return ids


# -- held jobs ------------------------------------------------------------------------


def test_a_live_job_is_left_alone(db, sent):
    _worker("host:1:abc", seen=timezone.now())
    job = _held(beat=_ago(seconds=5))
    assert _recover() == {}
    job.refresh_from_db()
    assert job.status == JobStatus.PROCESSING


def test_a_job_held_by_a_worker_never_registered_is_recovered_once_silent_as_long_as_a_dead_one(db, sent, settings):
    settings.WORKER_DEAD_AFTER_SECONDS = 30
    recent = _held(worker="host:9:new", beat=_ago(seconds=5))
    silent = _held(worker="host:9:gone", beat=_ago(seconds=45))

    actions = _recover()

    assert set(actions) == {str(silent.pk)}
    assert actions[str(silent.pk)].reason == "worker gone: host:9:gone unknown, heartbeat 45 s old"
    recent.refresh_from_db()
    assert recent.status == JobStatus.PROCESSING


def test_stale_heartbeat_requeues_and_keeps_completed_stages(db, sent, django_capture_on_commit_callbacks):
    job = _held(beat=_ago(minutes=16))
    done = StageRun.objects.create(job=job, index=0, name="a", stage_type="echo", started_at=_ago(minutes=17),
                                   status=StageRunStatus.COMPLETED, output={"x": 1})  # fmt: skip
    running = StageRun.objects.create(job=job, index=1, name="b", stage_type="echo", started_at=_ago(minutes=16))
    with django_capture_on_commit_callbacks(execute=True):
        actions = _recover()
    assert actions[str(job.pk)].action == "requeue"
    assert actions[str(job.pk)].reason.startswith("heartbeat 9")
    job.refresh_from_db()
    # locked_by keeps naming the worker of the last attempt; the job is no longer held (not processing).
    assert (job.status, job.locked_by, job.locked_at, job.attempts) == (
        JobStatus.QUEUED,
        "host:1:abc/Thread-1",
        None,
        1,
    )
    assert sent() == [str(job.pk)]
    done.refresh_from_db()
    running.refresh_from_db()
    assert done.status == "completed"
    assert (running.status, running.error) == ("failed", f"Interrupted: {actions[str(job.pk)].reason}")


def test_a_job_whose_worker_went_silent_is_requeued_before_the_stuck_timeout(db, sent):
    _worker("host:1:abc", seen=_ago(seconds=45))
    job = _held(beat=_ago(seconds=45))
    action = _recover()[str(job.pk)]
    assert (action.action, action.reason) == ("requeue", "worker gone: host:1:abc silent for 45 s")


def test_a_job_whose_worker_stopped_is_requeued(db, sent):
    _worker("host:1:abc", seen=_ago(seconds=2), stopped=_ago(seconds=2))
    job = _held(beat=_ago(seconds=2))
    assert _recover()[str(job.pk)].reason == "worker host:1:abc stopped"


def test_a_job_at_its_max_attempts_fails_with_the_reason(db, sent):
    job = _held(beat=_ago(minutes=20), attempts=3, max_attempts=3)
    action = _recover()[str(job.pk)]
    assert action.action == "fail"
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert job.error_message.startswith("Worker lost: heartbeat")
    assert job.error_message.endswith("3 of 3 attempts spent")
    assert sent() == []


def test_action_fail_fails_stuck_jobs_with_attempts_left(db, sent):
    job = _held(beat=_ago(minutes=20))
    assert _recover(on_stuck="fail")[str(job.pk)].action == "fail"


def test_a_cancelling_job_with_a_dead_worker_is_cancelled(db, sent):
    _worker("host:1:abc", seen=_ago(minutes=5))
    job = _held(JobStatus.CANCELLING, beat=_ago(minutes=5))
    assert _recover()[str(job.pk)].action == "cancel"
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED


@pytest.mark.parametrize("status", ["completed", "failed", "cancelled"])
def test_finished_jobs_are_never_touched(db, sent, status):
    job = _held(status, beat=_ago(days=3))
    Job.objects.filter(pk=job.pk).update(queued_at=_ago(days=3), run_at=_ago(days=3))
    assert _recover() == {}
    job.refresh_from_db()
    assert job.status == status


# -- waiting jobs ---------------------------------------------------------------------


def test_pending_job_the_broker_never_got_is_sent(db, sent):
    job = JobFactory(status=JobStatus.PENDING)
    Job.objects.filter(pk=job.pk).update(updated_at=_ago(seconds=30))
    fresh = JobFactory(status=JobStatus.PENDING)
    actions = _recover()
    assert set(actions) == {str(job.pk)}
    assert actions[str(job.pk)].reason.startswith("never handed to the broker")
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED
    assert sent() == [str(job.pk)]
    fresh.refresh_from_db()
    assert fresh.status == JobStatus.PENDING


def test_queued_job_never_picked_up_is_re_sent_once(db, sent):
    job = JobFactory(status=JobStatus.QUEUED, queued_at=_ago(minutes=20))
    JobFactory(status=JobStatus.QUEUED, queued_at=_ago(minutes=1))
    assert _recover()[str(job.pk)].reason == "never picked up (1200 s queued)"
    assert sent() == [str(job.pk)]
    assert _recover() == {}  # its queued_at now records the re-send


def test_overdue_scheduled_job_is_re_sent_and_future_ones_wait(db, sent):
    overdue = JobFactory(status=JobStatus.SCHEDULED, run_at=_ago(minutes=5))
    JobFactory(status=JobStatus.SCHEDULED, run_at=timezone.now() + timedelta(hours=1))
    assert set(_recover()) == {str(overdue.pk)}
    assert sent() == [str(overdue.pk)]


def test_dry_run_changes_nothing_and_says_what_it_would_do(db, sent, caplog):
    job = _held(beat=_ago(minutes=20))
    with caplog.at_level("INFO", logger="jobs.recovery"):
        assert _recover(dry_run=True)[str(job.pk)].action == "requeue"
    job.refresh_from_db()
    assert job.status == JobStatus.PROCESSING
    assert sent() == []
    assert not AuditLog.objects.exists()
    lines = [r.getMessage() for r in caplog.records if r.name == "jobs.recovery"]
    assert lines == [f"recovery: would requeue  {job.pk}  (heartbeat 1200 s old)"]


def test_command_reports_each_action_with_its_reason_and_audits_it(db, sent):
    job = _held(beat=_ago(minutes=20))
    out = StringIO()
    call_command("recover_jobs", stdout=out)
    assert f"requeue  {job.pk}  (heartbeat 1200 s old)" in out.getvalue()
    row = AuditLog.objects.get(action="command.recover_jobs.requeue")
    assert (row.resource_id, row.request_details["operation"]["reason"]) == (str(job.pk), "heartbeat 1200 s old")


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_runs_act_on_each_job_once(stub_broker):
    jobs = [_held(beat=_ago(minutes=20)) for _ in range(10)]
    jobs += [JobFactory(status=JobStatus.QUEUED, queued_at=_ago(minutes=20)) for _ in range(10)]
    barrier = threading.Barrier(2)
    results = []

    def run():
        barrier.wait()
        try:
            results.append(_recover())
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    acted = [job_id for result in results for job_id in result]
    assert sorted(acted) == sorted(str(j.pk) for j in jobs)
    assert AuditLog.objects.count() == 20


# -- heartbeats -----------------------------------------------------------------------


@pytest.fixture
def running():
    """Mark job ids as run by this process's threads, as job_run does."""
    from jobs import workers

    added = []

    def add(job):
        workers._running.add(str(job.pk))
        added.append(str(job.pk))
        return job

    yield add
    workers._running.difference_update(added)


def test_worker_beat_records_the_process_and_refreshes_the_jobs_it_runs(db, running):
    mine = running(_held(worker=process_id(), beat=_ago(minutes=10)))
    other = _held(worker="elsewhere:9:xyz", beat=_ago(minutes=10))
    assert worker_beat(queues=["jobs"]) == 1
    mine.refresh_from_db()
    other.refresh_from_db()
    assert timezone.now() - mine.heartbeat_at < timedelta(seconds=5)
    assert other.heartbeat_at < _ago(minutes=9)
    worker = WorkerProcess.objects.get(worker_id=process_id())
    assert worker.queues == ["jobs"]


def test_a_job_held_but_no_longer_run_by_its_process_is_handed_back(db, sent, running):
    from jobs.recovery import jobs_reclaim_dropped

    dropped = _held(worker=process_id(), beat=_ago(seconds=2))
    alive = running(_held(worker=process_id(), beat=_ago(seconds=2)))
    elsewhere = _held(worker="elsewhere:9:xyz", beat=_ago(seconds=2))
    actions = jobs_reclaim_dropped(process=process_id(), running={str(alive.pk)}, claimed_before=timezone.now())
    assert [(a.job_id, a.action) for a in actions] == [(str(dropped.pk), "requeue")]
    for job, status in ((dropped, JobStatus.PENDING), (alive, JobStatus.PROCESSING), (elsewhere, JobStatus.PROCESSING)):
        job.refresh_from_db()
        assert job.status == status


def test_a_job_claimed_after_the_heartbeat_read_its_running_list_is_left_alone(db, sent):
    """The heartbeat reads the running jobs, a thread claims one, then the heartbeat looks for dropped jobs."""
    from jobs.recovery import jobs_reclaim_dropped

    claimed_before = timezone.now()
    running_then = set()  # read before the thread below counted its job
    just_claimed = _held(worker=process_id(), beat=timezone.now() + timedelta(milliseconds=1))

    assert jobs_reclaim_dropped(process=process_id(), running=running_then, claimed_before=claimed_before) == []
    just_claimed.refresh_from_db()
    assert just_claimed.status == JobStatus.PROCESSING


@pytest.mark.django_db(transaction=True)
def test_heartbeat_middleware_beats_while_the_worker_runs_and_records_its_stop(running):
    broker = dramatiq.get_broker()
    middleware = JobHeartbeat(interval=0.1)
    job = running(_held(worker=process_id(), beat=_ago(minutes=10)))
    middleware.after_worker_boot(broker, None)
    try:
        deadline = time.monotonic() + 5
        while Job.objects.get(pk=job.pk).heartbeat_at < _ago(seconds=5):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        first = WorkerProcess.objects.get(worker_id=process_id()).last_seen_at
        time.sleep(0.3)
        assert WorkerProcess.objects.get(worker_id=process_id()).last_seen_at > first
    finally:
        middleware.after_worker_shutdown(broker, None)
    middleware.thread.join(timeout=5)
    assert not middleware.thread.is_alive()
    assert WorkerProcess.objects.get(worker_id=process_id()).stopped_at is not None


# -- graceful shutdown ----------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_shutdown_hands_a_running_stage_back_and_the_attempt_does_not_count(stub_broker):
    from pipelines.deadline import InterruptibleStage
    from tests.factories import PipelineFactory

    pipeline = PipelineFactory(
        config={"stages": [{"name": "a", "type": "echo"}, {"name": "nap", "type": "sleep", "params": {"seconds": 30}}]}
    )
    job = JobFactory(pipeline=pipeline, status=JobStatus.QUEUED)
    from jobs.run import job_run

    worker = threading.Thread(target=lambda: (job_run(job_id=str(job.pk)), connection.close()))
    worker.start()
    deadline = time.monotonic() + 10
    while not InterruptibleStage._threads:  # "a" done (its run not written yet: echo is idempotent), "nap" running
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.2)

    assert InterruptibleStage.hand_back_all() == 1
    worker.join(timeout=10)
    assert not worker.is_alive()

    job.refresh_from_db()
    # The interrupted attempt does not count: the job's budget grew by one with it.
    assert (job.status, job.attempts, job.max_attempts, job.locked_at) == (JobStatus.QUEUED, 1, 4, None)
    nap = StageRun.objects.get(job=job, name="nap")
    assert (nap.status, nap.error) == ("failed", "JobHandBack: interrupted: the worker is shutting down")
    # The hand-back wrote the deferred run of "a" with it: its checkpoint is kept.
    assert StageRun.objects.get(job=job, name="a").status == "completed"
    # The next run resumes at the interrupted stage: the first one is not run again.
    Job.objects.filter(pk=job.pk).update(pipeline_config={**pipeline.config, "stages": [
        {"name": "a", "type": "echo"}, {"name": "nap", "type": "sleep", "params": {"seconds": 0}}]})  # fmt: skip
    job_run(job_id=str(job.pk))
    job.refresh_from_db()
    assert (job.status, job.attempts) == (JobStatus.COMPLETED, 2)
    assert StageRun.objects.filter(job=job, name="a").count() == 1


def test_hand_back_does_nothing_outside_a_stage():
    from pipelines.deadline import InterruptibleStage

    assert InterruptibleStage.hand_back_all() == 0


@pytest.mark.django_db(transaction=True)
def test_a_worker_registers_before_it_takes_any_message():
    broker = dramatiq.get_broker()
    worker = dramatiq.Worker(broker, worker_threads=3)

    JobHeartbeat(interval=60).before_worker_boot(broker, worker)

    registered = WorkerProcess.objects.get(worker_id=process_id())
    assert registered.threads == 3 and registered.stopped_at is None
    assert set(registered.queues) >= {"jobs", "jobs.high", "jobs.urgent", "webhooks"}


@pytest.mark.django_db(transaction=True)
def test_a_worker_limited_to_some_queues_registers_only_those():
    """Readiness counts a queue as served by the workers registered for it: a webhooks-only worker must not count."""
    broker = dramatiq.get_broker()
    worker = dramatiq.Worker(broker, queues={"webhooks"}, worker_threads=2)

    JobHeartbeat(interval=60).before_worker_boot(broker, worker)

    assert WorkerProcess.objects.get(worker_id=process_id()).queues == ["webhooks"]
