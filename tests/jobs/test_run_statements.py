"""The run path's cost in statements: a later change that adds one to every job shows up here."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from jobs.models import Job, JobEvent, JobStatus, StageRun
from jobs.run import job_run
from pipelines.registry import stage
from tests.factories import JobFactory, PipelineFactory

pytestmark = pytest.mark.django_db(transaction=True)


def _job(stages: int) -> Job:
    config = {"stages": [{"name": f"s{i}", "type": "echo"} for i in range(stages)]}
    return JobFactory(pipeline=PipelineFactory(config=config), status=JobStatus.QUEUED, input_data={"n": 1})


def _run_counting(job: Job) -> list[str]:
    with CaptureQueriesContext(connection) as queries:
        assert job_run(job_id=str(job.pk)) == JobStatus.COMPLETED
    return [q["sql"] for q in queries.captured_queries]


def _postgresql_only():
    if connection.vendor != "postgresql":
        pytest.skip("the single-statement transitions are PostgreSQL's")


def test_a_one_stage_job_costs_two_statements_claim_and_completion():
    _postgresql_only()
    job = _job(1)

    statements = _run_counting(job)

    assert len(statements) == 2, statements
    assert statements[0].lstrip().startswith("WITH j AS (") and "job.started" in statements[0]
    assert "jobs_jobresult" in statements[1] and "jobs_stagerun" in statements[1]
    # Each transition wrote its rows: the stage run, the result and both events.
    assert StageRun.objects.filter(job=job).count() == 1
    assert list(JobEvent.objects.filter(job=job).values_list("type", flat=True)) == ["job.started", "job.completed"]
    job.refresh_from_db()
    assert (job.status, job.progress, job.result.result) == (JobStatus.COMPLETED, 100.0, {"n": 1})


def test_quick_idempotent_stages_are_written_with_the_completion():
    _postgresql_only()
    job = _job(3)

    statements = _run_counting(job)

    assert len(statements) == 2, statements  # claim, completion (with the three stage runs, as one JSON parameter)
    assert "jobs_stagerun" in statements[1] and "jsonb_to_recordset" in statements[1]
    runs = list(StageRun.objects.filter(job=job).order_by("index").values_list("name", "status", "output"))
    assert runs == [("s0", "completed", {"n": 1}), ("s1", "completed", {"n": 1}), ("s2", "completed", None)]
    # Each run keeps its own times through the JSON parameter: in order, each within the job's run.
    job.refresh_from_db()
    times = list(StageRun.objects.filter(job=job).order_by("index").values_list("started_at", "finished_at"))
    assert job.started_at <= times[0][0] <= times[0][1] <= times[1][0] <= times[2][1] <= job.completed_at
    assert set(StageRun.objects.filter(job=job).values_list("attempt", "job_attempt")) == {(1, 1)}


def test_each_further_stage_costs_one_statement_when_every_run_is_written_at_once(settings):
    _postgresql_only()
    settings.JOB_CHECKPOINT_INTERVAL_MS = 0

    statements = _run_counting(_job(3))

    assert len(statements) == 4, statements  # claim, two checkpoints, completion


@stage("test_statements_side_effect", isolated=False)
def _side_effect(ctx):
    """Not idempotent (the default): as if it sent something."""
    return ctx.previous


def test_a_stage_that_is_not_idempotent_is_checkpointed_as_it_finishes(monkeypatch):
    from jobs import run

    _postgresql_only()
    config = {"stages": [{"name": "a", "type": "echo"}, {"name": "send", "type": "test_statements_side_effect"},
                         {"name": "b", "type": "echo"}, {"name": "c", "type": "echo"}]}  # fmt: skip
    job = JobFactory(pipeline=PipelineFactory(config=config), status=JobStatus.QUEUED, input_data={"n": 1})
    checkpointed = []
    original = run.job_checkpoint

    def recording(**kwargs):
        checkpointed.append([record.name for record in kwargs["records"]])
        return original(**kwargs)

    monkeypatch.setattr(run, "job_checkpoint", recording)

    statements = _run_counting(job)

    # claim; the checkpoint after "send" (with the deferred run of "a"); completion with "b" and "c"
    assert len(statements) == 3, statements
    assert checkpointed == [["a", "send"]]
    assert ["jsonb_to_recordset" in sql for sql in statements] == [False, True, True]
    runs = StageRun.objects.filter(job=job).order_by("index").values_list("name", "status", "output")
    assert list(runs) == [("a", "completed", {"n": 1}), ("send", "completed", {"n": 1}),
                          ("b", "completed", {"n": 1}), ("c", "completed", None)]  # fmt: skip


@pytest.mark.parametrize("interval_ms", [0, 1000])
def test_the_portable_form_writes_the_same_rows(settings, interval_ms):
    settings.JOB_RUN_SINGLE_STATEMENT = False
    settings.JOB_CHECKPOINT_INTERVAL_MS = interval_ms
    job = _job(2)

    job_run(job_id=str(job.pk))

    job.refresh_from_db()
    assert (job.status, job.progress, job.attempts, job.result.result) == (JobStatus.COMPLETED, 100.0, 1, {"n": 1})
    runs = list(StageRun.objects.filter(job=job).order_by("index").values_list("name", "status", "output"))
    assert runs == [("s0", "completed", {"n": 1}), ("s1", "completed", None)]
    assert list(JobEvent.objects.filter(job=job).values_list("type", flat=True)) == ["job.started", "job.completed"]
