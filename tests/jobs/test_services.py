"""Job services: submit, enqueue, claim and run."""

import hashlib
import json
from datetime import timedelta

import pytest
from django.utils import timezone
from dramatiq import Message

from jobs import actors
from jobs.models import Job, JobResult, JobStatus, StageRun, StageRunStatus
from jobs.run import job_claim, job_run
from jobs.services import JobSubmission, JobSubmitError, SubmitContext, band_queue, job_enqueue, job_submit
from jobs.workers import worker_id
from pipelines.registry import stage
from pipelines.services import pipeline_ensure
from tests.factories import JobFactory, PipelineFactory, UserFactory


@stage("tests_jobs_services_explode")
def explode(ctx):
    """Fail every time."""
    raise RuntimeError("boom at the second stage")


@stage("tests_jobs_services_capture")
def capture(ctx):
    """Return what the stage was given, so a test can see how outputs flow."""
    return {"previous": ctx.previous, "outputs": ctx.outputs, "input": ctx.input}


def queued_messages(broker, queue_name):
    return [Message.decode(data) for data in broker.queues[queue_name].queue]


def broker_down(*args, **kwargs):
    raise ConnectionError("broker unreachable")


def stages_config(*stages, **extra):
    return {"input_schema": {"type": "object"}, "stages": list(stages), **extra}


# --- job_submit -------------------------------------------------------------------


def test_job_submit_creates_a_pending_job_with_the_pipeline_config_snapshot(demo_pipelines, stub_broker):
    pipeline = demo_pipelines["text-analysis"]
    creator = UserFactory()
    submission = JobSubmission(
        pipeline="text-analysis",
        input_data={"text": "Hello there."},
        priority=7,
        user_id=creator.pk,
        username="carol",
        action="analyse",
    )

    job = job_submit(submission=submission, context=SubmitContext(created_by=creator, request_id="req-1"))

    job.refresh_from_db()
    assert job.status == JobStatus.PENDING
    assert job.queued_at is None
    assert job.pipeline_id == pipeline.pk
    assert job.pipeline_version == pipeline.version
    assert job.pipeline_config == pipeline.config
    assert (job.priority, job.user_id, job.username, job.action) == (7, creator.pk, "carol", "analyse")
    assert job.created_by == creator
    assert job.input_data == {"text": "Hello there."}
    assert job.request_id == "req-1"
    # Nothing reaches the broker before the transaction commits.
    assert stub_broker.queues["jobs.high"].qsize() == 0


def test_a_batch_stores_every_field_of_every_job_as_submitted(db, stub_broker):
    """The batch insert sends the rows as JSON: text, nested JSON, UUIDs and times must come back unchanged."""
    from audit.models import AuditLog
    from jobs.models import JobEvent
    from jobs.services import job_submit_many

    pipeline_ensure(name="quoted", config=stages_config({"name": "echo", "type": "echo"}))
    creator = UserFactory()
    run_at = timezone.now().astimezone(timezone.get_fixed_timezone(-300)) + timedelta(days=1, microseconds=7)
    tricky = {"q": 'it\'s "quoted" \\ back', "uni": "naïve ☃ 𝄞", "n": [1, 2.5, -3, None, True], "deep": {"a": {}}}
    submissions = [
        JobSubmission(pipeline="quoted", input_data=tricky, priority=10, user_id=creator.pk, username="o'brien",
                      action="%s %(x)s", webhook_url="https://example.com/hook?a=1&b=%20",
                      webhook_secret="s3cr3t", idempotency_key="key-1", run_at=run_at, debug_mode=True),
        JobSubmission(pipeline="quoted", input_data={}),
    ]  # fmt: skip

    jobs = job_submit_many(submissions=submissions, context=SubmitContext(created_by=creator, request_id="r"))

    for job in jobs:
        stored = Job.objects.get(pk=job.pk)
        for field in Job._meta.concrete_fields:
            assert getattr(stored, field.attname) == getattr(job, field.attname), field.name
    assert jobs[0].run_at == run_at and jobs[0].status == JobStatus.SCHEDULED
    assert Job.objects.get(pk=jobs[0].pk).input_data == tricky
    events = {event.job_id: event for event in JobEvent.objects.filter(job__in=jobs)}
    assert events[jobs[0].pk].data == {"status": "scheduled", "run_at": run_at.isoformat()}
    assert events[jobs[1].pk].data == {"status": "pending"}
    assert set(AuditLog.objects.filter(action="jobs.job.create").values_list("resource_id", flat=True)) == {
        str(job.pk) for job in jobs
    }


def test_job_keeps_its_config_snapshot_when_the_pipeline_changes_later(db, stub_broker):
    original = stages_config({"name": "a", "type": "echo"})
    pipeline_ensure(name="evolving", config=original)
    job = job_submit(submission=JobSubmission(pipeline="evolving", input_data={}))

    pipeline, outcome = pipeline_ensure(name="evolving", config=stages_config({"name": "b", "type": "echo"}))

    assert outcome == "updated"
    job.refresh_from_db()
    assert (job.pipeline_version, job.pipeline_config) == (1, original)
    assert pipeline.version == 2


def test_job_submit_queues_the_job_and_sends_it_to_the_broker_after_commit(
    demo_pipelines, stub_broker, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        job = job_submit(submission=JobSubmission(pipeline="text-analysis", input_data={"text": "Hi."}, priority=2))
        assert stub_broker.queues["jobs"].qsize() == 0

    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED
    assert job.queued_at is not None
    assert stub_broker.queues["jobs"].qsize() == 1
    assert stub_broker.queues["jobs.DQ"].qsize() == 0
    (message,) = queued_messages(stub_broker, "jobs")
    assert message.actor_name == "jobs_run"
    assert list(message.args) == [str(job.id)]
    assert message.options["priority"] == 2


@pytest.mark.parametrize(
    ("priority", "queue", "actor"),
    [
        (0, "jobs", "jobs_run"),
        (3, "jobs", "jobs_run"),
        (4, "jobs.high", "jobs_run_high"),
        (7, "jobs.high", "jobs_run_high"),
        (8, "jobs.urgent", "jobs_run_urgent"),
        (10, "jobs.urgent", "jobs_run_urgent"),
    ],
)
def test_a_job_is_sent_to_the_queue_of_its_priority_band(
    demo_pipelines, stub_broker, django_capture_on_commit_callbacks, priority, queue, actor
):
    with django_capture_on_commit_callbacks(execute=True):
        job_submit(submission=JobSubmission(pipeline="sample_task", input_data={}, priority=priority))

    assert band_queue(priority) == queue
    (message,) = queued_messages(stub_broker, queue)
    assert (message.actor_name, message.options["priority"]) == (actor, priority)
    assert sum(stub_broker.queues[q].qsize() for q in ("jobs", "jobs.high", "jobs.urgent")) == 1


@pytest.mark.parametrize("name", ["no-such-pipeline", "retired"])
def test_job_submit_rejects_an_unknown_or_inactive_pipeline(db, stub_broker, name):
    PipelineFactory(name="retired", is_active=False)

    with pytest.raises(JobSubmitError) as excinfo:
        job_submit(submission=JobSubmission(pipeline=name, input_data={}))

    assert list(excinfo.value.errors) == ["pipeline"]
    assert name in excinfo.value.errors["pipeline"][0]
    assert Job.objects.count() == 0


def test_job_submit_rejects_input_failing_the_schema_naming_the_field(db, stub_broker):
    schema = {
        "type": "object",
        "properties": {"url": {"type": "string"}, "count": {"type": "integer"}},
        "required": ["url"],
    }
    PipelineFactory(name="fetch", config={"input_schema": schema, "stages": [{"name": "a", "type": "echo"}]})

    with pytest.raises(JobSubmitError) as excinfo:
        job_submit(submission=JobSubmission(pipeline="fetch", input_data={"count": "three"}))

    assert list(excinfo.value.errors) == ["input_data"]
    problems = excinfo.value.errors["input_data"]
    assert any("'url' is a required property" in p for p in problems)
    assert any(p.startswith("count: ") and "integer" in p for p in problems)
    assert Job.objects.count() == 0


def test_job_submit_rejects_demo_text_analysis_input_with_a_non_string_text(demo_pipelines, stub_broker):
    with pytest.raises(JobSubmitError) as excinfo:
        job_submit(submission=JobSubmission(pipeline="text-analysis", input_data={"text": 5}))

    assert any(p.startswith("text: ") for p in excinfo.value.errors["input_data"])


@pytest.mark.parametrize("input_data", [["a", "list"], "a string", None])
def test_job_submit_rejects_input_that_is_not_an_object(demo_pipelines, stub_broker, input_data):
    with pytest.raises(JobSubmitError) as excinfo:
        job_submit(submission=JobSubmission(pipeline="sample_task", input_data=input_data))

    assert excinfo.value.errors == {"input_data": ["Must be a JSON object."]}


def test_job_submit_rejects_input_larger_than_the_limit(demo_pipelines, stub_broker, settings):
    settings.JOB_INPUT_MAX_BYTES = 50

    with pytest.raises(JobSubmitError) as excinfo:
        job_submit(submission=JobSubmission(pipeline="sample_task", input_data={"text": "x" * 60}))

    assert "limit is 50" in excinfo.value.errors["input_data"][0]
    assert Job.objects.count() == 0


def test_max_attempts_defaults_from_the_pipeline_config(db, stub_broker, settings):
    settings.JOB_DEFAULT_MAX_ATTEMPTS = 4
    PipelineFactory(name="patient", config=stages_config({"name": "a", "type": "echo"}, max_attempts=7))
    PipelineFactory(name="plain", config=stages_config({"name": "a", "type": "echo"}))

    from_pipeline = job_submit(submission=JobSubmission(pipeline="patient", input_data={}))
    explicit = job_submit(submission=JobSubmission(pipeline="patient", input_data={}, max_attempts=2))
    from_settings = job_submit(submission=JobSubmission(pipeline="plain", input_data={}))

    assert Job.objects.get(pk=from_pipeline.pk).max_attempts == 7
    assert Job.objects.get(pk=explicit.pk).max_attempts == 2
    assert Job.objects.get(pk=from_settings.pk).max_attempts == 4


def test_job_with_a_future_run_at_is_scheduled_and_sent_with_a_delay(
    demo_pipelines, stub_broker, django_capture_on_commit_callbacks
):
    run_at = timezone.now() + timedelta(hours=1)

    with django_capture_on_commit_callbacks(execute=True):
        job = job_submit(submission=JobSubmission(pipeline="sample_task", input_data={}, run_at=run_at))

    job.refresh_from_db()
    assert job.status == JobStatus.SCHEDULED
    assert job.run_at == run_at
    assert job.queued_at is None
    assert stub_broker.queues["jobs"].qsize() == 0
    assert stub_broker.queues["jobs.DQ"].qsize() == 1
    (message,) = queued_messages(stub_broker, "jobs.DQ")
    assert list(message.args) == [str(job.id)]
    assert abs(message.options["eta"] - run_at.timestamp() * 1000) < 5_000


def test_job_with_a_past_run_at_is_queued_at_once_without_delay(
    demo_pipelines, stub_broker, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        job = job_submit(
            submission=JobSubmission(
                pipeline="sample_task", input_data={}, run_at=timezone.now() - timedelta(minutes=1)
            )
        )

    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED
    assert stub_broker.queues["jobs"].qsize() == 1
    assert stub_broker.queues["jobs.DQ"].qsize() == 0


# --- job_enqueue ------------------------------------------------------------------


def test_job_stays_pending_when_the_broker_send_fails_and_can_be_sent_later(
    demo_pipelines, stub_broker, django_capture_on_commit_callbacks, monkeypatch
):
    monkeypatch.setattr(stub_broker, "enqueue", broker_down)
    with django_capture_on_commit_callbacks(execute=True):
        job = job_submit(submission=JobSubmission(pipeline="sample_task", input_data={"a": 1}))

    job.refresh_from_db()
    assert job.status == JobStatus.PENDING
    assert job.queued_at is None
    assert job.input_data == {"a": 1}

    monkeypatch.undo()
    assert job_enqueue(job_id=job.id) is True
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED
    assert stub_broker.queues["jobs"].qsize() == 1


def test_job_enqueue_reports_a_failed_send(demo_pipelines, stub_broker, monkeypatch):
    job = JobFactory(pipeline=demo_pipelines["sample_task"], status=JobStatus.PENDING)

    monkeypatch.setattr(stub_broker, "enqueue", broker_down)

    assert job_enqueue(job_id=job.id) is False
    job.refresh_from_db()
    assert job.status == JobStatus.PENDING


def test_scheduled_job_stays_scheduled_when_the_broker_send_fails(demo_pipelines, stub_broker, monkeypatch):
    job = JobFactory(
        pipeline=demo_pipelines["sample_task"],
        status=JobStatus.SCHEDULED,
        run_at=timezone.now() + timedelta(hours=1),
    )
    monkeypatch.setattr(stub_broker, "enqueue", broker_down)

    assert job_enqueue(job_id=job.id, delay_ms=3_600_000) is False
    job.refresh_from_db()
    assert job.status == JobStatus.SCHEDULED


@pytest.mark.parametrize("status", [JobStatus.QUEUED, JobStatus.PROCESSING, JobStatus.COMPLETED, JobStatus.FAILED])
def test_job_enqueue_does_not_resend_a_job_that_left_pending(demo_pipelines, stub_broker, status):
    job = JobFactory(pipeline=demo_pipelines["sample_task"], status=status)

    assert job_enqueue(job_id=job.id) is False
    assert stub_broker.queues["jobs"].qsize() == 0
    job.refresh_from_db()
    assert job.status == status


# --- job_claim --------------------------------------------------------------------


def test_job_claim_moves_a_queued_job_to_processing_for_the_worker(db):
    job = JobFactory(status=JobStatus.QUEUED, queued_at=timezone.now())
    before = timezone.now()

    claimed = job_claim(job_id=str(job.id), worker="host:1:main")

    after = timezone.now()
    assert claimed is not None and claimed.id == job.pk
    job.refresh_from_db()
    assert job.status == JobStatus.PROCESSING
    assert job.attempts == 1
    assert job.locked_by == "host:1:main"
    for moment in (job.locked_at, job.heartbeat_at, job.started_at):
        assert before <= moment <= after


def test_a_second_claim_of_the_same_job_returns_none(db):
    job = JobFactory(status=JobStatus.QUEUED)
    job_claim(job_id=str(job.id), worker="first")

    assert job_claim(job_id=str(job.id), worker="second") is None

    job.refresh_from_db()
    assert (job.locked_by, job.attempts) == ("first", 1)


@pytest.mark.parametrize(
    "status",
    [
        JobStatus.PROCESSING,
        JobStatus.RETRYING,
        JobStatus.COMPLETED,
        JobStatus.FAILED,
        JobStatus.CANCELLING,
        JobStatus.CANCELLED,
    ],
)
def test_job_claim_returns_none_for_a_job_that_is_not_queued(db, status):
    job = JobFactory(status=status)

    assert job_claim(job_id=str(job.id), worker="w") is None

    job.refresh_from_db()
    assert (job.status, job.attempts, job.locked_by) == (status, 0, "")


def test_a_pending_job_is_claimable_when_its_message_arrives_before_it_is_marked_queued(db):
    job = JobFactory(status=JobStatus.PENDING)

    claimed = job_claim(job_id=str(job.id), worker="w")

    assert claimed is not None
    job.refresh_from_db()
    assert (job.status, job.attempts, job.locked_by) == (JobStatus.PROCESSING, 1, "w")
    assert job.queued_at is not None


def test_job_claim_returns_none_for_an_unknown_job(db):
    assert job_claim(job_id="00000000-0000-0000-0000-000000000000", worker="w") is None


def test_a_scheduled_job_whose_run_at_has_passed_is_claimed(db):
    job = JobFactory(status=JobStatus.SCHEDULED, run_at=timezone.now() - timedelta(seconds=1))

    claimed = job_claim(job_id=str(job.id), worker="w")

    assert claimed is not None
    job.refresh_from_db()
    assert job.status == JobStatus.PROCESSING
    assert job.queued_at is not None
    assert job.attempts == 1


def test_a_scheduled_job_whose_run_at_is_still_ahead_is_not_claimed(db):
    job = JobFactory(status=JobStatus.SCHEDULED, run_at=timezone.now() + timedelta(minutes=5))

    assert job_claim(job_id=str(job.id), worker="w") is None

    job.refresh_from_db()
    assert (job.status, job.queued_at, job.attempts) == (JobStatus.SCHEDULED, None, 0)


# --- job_run ----------------------------------------------------------------------

HTML = (
    "<html><head><style>p { color: red }</style></head>"
    "<body><h1>Rivers</h1><p>Rivers carry water. Rivers carry sediment too!</p>"
    "<script>var ignored = 'script words';</script></body></html>"
)


def test_job_run_completes_the_text_analysis_pipeline(demo_pipelines):
    job = JobFactory(pipeline=demo_pipelines["text-analysis"], input_data={"html": HTML})

    job_run(job_id=str(job.id))

    job.refresh_from_db()

    assert job.status == JobStatus.COMPLETED
    assert job.progress == 100.0
    assert job.completed_at is not None
    assert job.duration_ms is not None
    assert job.locked_by == worker_id()  # kept: the worker that ran the last attempt
    runs = list(StageRun.objects.filter(job=job).order_by("index"))
    assert [(r.index, r.name, r.stage_type, r.status) for r in runs] == [
        (0, "extract", "extract_text", StageRunStatus.COMPLETED),
        (1, "stats", "text_stats", StageRunStatus.COMPLETED),
    ]
    extracted = "Rivers\n\nRivers carry water. Rivers carry sediment too!"
    assert runs[0].output == {"text": extracted, "characters": len(extracted)}
    assert runs[1].output is None  # the last stage's output is the result, stored once
    assert all(r.finished_at is not None and r.duration_ms is not None for r in runs)
    assert [(r.attempt, r.job_attempt) for r in runs] == [(1, 1), (1, 1)]
    result = JobResult.objects.get(job=job)
    # text_stats counted the extracted text, not the HTML with its script and style.
    assert result.result["words"] == 8
    assert result.result["sentences"] == 2
    assert result.result["top_terms"][:2] == [{"term": "rivers", "count": 3}, {"term": "carry", "count": 2}]
    assert not result.is_file
    assert result.metadata == {"pipeline": "text-analysis", "pipeline_version": job.pipeline_version}


def test_each_stage_receives_the_previous_output_and_earlier_outputs_by_name(db):
    pipeline = PipelineFactory(
        config=stages_config(
            {"name": "extract", "type": "extract_text", "params": {"field": "body"}},
            {"name": "look", "type": "tests_jobs_services_capture"},
        )
    )
    job = JobFactory(pipeline=pipeline, input_data={"body": "<p>Hi <b>there</b></p>"})

    job_run(job_id=str(job.id))

    extract_output = {"text": "Hi there", "characters": 8}
    assert JobResult.objects.get(job=job).result == {
        "previous": extract_output,
        "outputs": {"extract": extract_output},
        "input": {"body": "<p>Hi <b>there</b></p>"},
    }


def test_the_first_stage_receives_the_job_input(db):
    pipeline = PipelineFactory(config=stages_config({"name": "look", "type": "tests_jobs_services_capture"}))
    job = JobFactory(pipeline=pipeline, input_data={"n": 1})

    job_run(job_id=str(job.id))

    assert JobResult.objects.get(job=job).result == {"previous": {"n": 1}, "outputs": {}, "input": {"n": 1}}


def test_a_stage_that_raises_fails_the_job_and_records_its_error(db):
    pipeline = PipelineFactory(
        config=stages_config(
            {"name": "first", "type": "echo"},
            {"name": "second", "type": "tests_jobs_services_explode"},
            {"name": "third", "type": "echo"},
        )
    )
    job = JobFactory(pipeline=pipeline)

    job_run(job_id=str(job.id))

    job.refresh_from_db()

    assert job.status == JobStatus.FAILED
    assert "'second'" in job.error_message
    assert "boom at the second stage" in job.error_message
    assert job.completed_at is not None
    assert job.locked_by == worker_id()
    runs = {r.name: r for r in StageRun.objects.filter(job=job)}
    assert set(runs) == {"first", "second"}
    assert runs["first"].status == StageRunStatus.COMPLETED
    failed = runs["second"]
    assert failed.status == StageRunStatus.FAILED
    assert failed.error == "RuntimeError: boom at the second stage"
    assert "Traceback" in failed.traceback
    assert "RuntimeError: boom at the second stage" in failed.traceback
    assert failed.output is None
    assert failed.finished_at is not None
    assert not JobResult.objects.filter(job=job).exists()


def test_a_result_larger_than_the_inline_limit_is_stored_as_a_file(db, settings):
    settings.RESULT_INLINE_MAX_BYTES = 64
    pipeline = PipelineFactory(config=stages_config({"name": "pass", "type": "echo"}))
    output = {"text": "é" * 100, "n": [1, 2, 3]}
    job = JobFactory(pipeline=pipeline, input_data=output)

    job_run(job_id=str(job.id))

    job.refresh_from_db()

    assert job.status == JobStatus.COMPLETED
    result = JobResult.objects.get(job=job)
    assert result.is_file
    assert result.result is None
    with result.result_file.open("rb") as stored:
        content = stored.read()
    # Compact JSON of the output (key order is the database's: PostgreSQL's jsonb reorders keys).
    assert json.loads(content) == output
    assert content == json.dumps(json.loads(content), separators=(",", ":")).encode()
    assert result.size_bytes == len(content) == len(json.dumps(output, separators=(",", ":")).encode())
    assert result.checksum == hashlib.sha256(content).hexdigest()
    assert result.content_type == "application/json"


def test_a_result_exactly_at_the_inline_limit_is_stored_inline(db, settings):
    output = {"text": "abc"}
    settings.RESULT_INLINE_MAX_BYTES = len(json.dumps(output, separators=(",", ":")).encode())
    pipeline = PipelineFactory(config=stages_config({"name": "pass", "type": "echo"}))
    job = JobFactory(pipeline=pipeline, input_data=output)

    job_run(job_id=str(job.id))

    result = JobResult.objects.get(job=job)
    assert not result.is_file
    assert result.result == output
    assert result.size_bytes == settings.RESULT_INLINE_MAX_BYTES
    assert result.checksum == hashlib.sha256(b'{"text":"abc"}').hexdigest()


def test_a_duplicate_message_for_a_completed_job_does_nothing(demo_pipelines):
    job = JobFactory(pipeline=demo_pipelines["text-analysis"], input_data={"text": "Once only."})
    job_run(job_id=str(job.id))
    first = Job.objects.get(pk=job.pk)
    result = JobResult.objects.get(job=job)

    assert job_run(job_id=str(job.id)) is None

    again = Job.objects.get(pk=job.pk)
    assert StageRun.objects.filter(job=job).count() == 2
    assert (again.status, again.attempts, again.completed_at) == (JobStatus.COMPLETED, 1, first.completed_at)
    assert JobResult.objects.get(job=job).created_at == result.created_at


def test_the_jobs_run_actor_runs_the_job(demo_pipelines):
    job = JobFactory(pipeline=demo_pipelines["text-analysis"], input_data={"text": "Actor run."})

    actors.jobs_run(str(job.id))

    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED
    assert JobResult.objects.filter(job=job).exists()


def test_a_value_json_cannot_encode_inside_a_json_field_is_refused_not_stored_as_text(db):
    """The batch insert turns the table's own UUIDs and times into text, never what a JSON field holds."""
    from jobs.models import JobEvent
    from jobs.services import _insert_submissions

    job = JobFactory.build(status=JobStatus.PENDING)
    event = JobEvent(job_id=job.pk, type="job.created", data={"at": timezone.now()}, created_at=timezone.now())
    with pytest.raises(TypeError):
        _insert_submissions([job], [event], [])
    assert not Job.objects.filter(pk=job.pk).exists()
