"""Isolated stages: a child process per stage, killed at its deadline or at the job's time limit, memory-capped."""

import ctypes
import threading
import time

import psutil
import pytest
from dramatiq.middleware.time_limit import TimeLimitExceeded

from jobs.models import JobStatus, StageRun
from jobs.run import job_run
from pipelines.isolation import IsolatedStageError, run_stage, warm_up
from pipelines.registry import StageContext, get_stage_type, stage
from tests.factories import JobFactory, PipelineFactory


@stage("test_isolated_spin")
def isolated_spin(ctx):
    """Spins in Python, holding the GIL of its own process, for `ctx.input['seconds']`."""
    deadline = time.monotonic() + ctx.input["seconds"]
    while time.monotonic() < deadline:
        pass
    return {"done": True}


@stage("test_isolated_hog")
def isolated_hog(ctx):
    """Asks for `ctx.input['mb']` MB at once."""
    blob = bytearray(ctx.input["mb"] * 1024 * 1024)
    return {"bytes": len(blob)}


def _context(**input_data) -> StageContext:
    return StageContext(job_id="t", input=input_data, previous=input_data, outputs={}, params={})


def _descendants() -> set[int]:
    """Pids of this process's live descendants (the fork server's children are among them)."""
    return {p.pid for p in psutil.Process().children(recursive=True) if p.status() != psutil.STATUS_ZOMBIE}


def test_the_built_in_cpu_bound_stages_run_isolated_and_the_light_ones_in_process():
    assert get_stage_type("extract_text").isolated
    assert get_stage_type("text_stats").isolated
    assert not get_stage_type("echo").isolated
    assert not get_stage_type("http_request").isolated  # waits on I/O: its timeout is the request's


def test_a_stage_over_its_memory_cap_fails_without_retry_and_the_worker_carries_on(settings):
    settings.STAGE_MEMORY_LIMIT_MB = 256
    with pytest.raises(IsolatedStageError) as raised:
        run_stage(get_stage_type("test_isolated_hog"), _context(mb=1024), timeout_s=30)
    assert raised.value.type_name == "MemoryError"
    assert raised.value.retryable is False
    # The same stage within the cap runs: the cap is the stage's process's, per run.
    assert run_stage(get_stage_type("test_isolated_hog"), _context(mb=16), timeout_s=30) == {"bytes": 16 * 2**20}


def test_a_stage_killed_at_its_deadline_is_retried_when_it_has_retries_left(db, stub_broker):
    pipeline = PipelineFactory(
        config={"stages": [{"name": "spin", "type": "test_isolated_spin", "timeout_s": 1, "retries": 1}]}
    )
    job = JobFactory(pipeline=pipeline, status=JobStatus.QUEUED, input_data={"seconds": 60})

    started = time.monotonic()
    job_run(job_id=str(job.pk))
    elapsed = time.monotonic() - started

    job.refresh_from_db()
    assert job.status == JobStatus.RETRYING
    assert "exceeded its timeout of 1 s" in job.error_message
    run = StageRun.objects.get(job=job)
    assert run.status == "failed"
    assert elapsed < 20  # killed at its deadline, not after the 60 s it asked for


def test_the_jobs_time_limit_ends_an_isolated_stage_and_kills_its_process():
    """Dramatiq's TimeLimit raises TimeLimitExceeded in the worker thread; the stage's process dies with it."""
    warm_up()  # the fork server is not the stage's process
    before = _descendants()
    outcome = {}

    def body():
        try:
            run_stage(get_stage_type("test_isolated_spin"), _context(seconds=60), timeout_s=None)
        except TimeLimitExceeded:
            outcome["raised"] = time.monotonic()

    thread = threading.Thread(target=body)
    thread.start()
    deadline = time.monotonic() + 20
    while not (_descendants() - before) and time.monotonic() < deadline:
        time.sleep(0.05)
    spinning = _descendants() - before
    assert spinning, "the stage's process never started"
    time.sleep(0.3)

    # What dramatiq.middleware.time_limit does when a job's time limit passes.
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident), ctypes.py_object(TimeLimitExceeded))
    thread.join(timeout=10)

    assert not thread.is_alive()
    assert "raised" in outcome
    assert not (_descendants() & spinning), "the stage's process outlived its job"


def test_a_worker_starts_the_fork_server_at_boot_only_when_an_active_pipeline_has_an_isolated_stage(db, settings):
    from pipelines.isolation import prestart_wanted

    settings.ISOLATED_STAGES_PRESTART = "auto"
    PipelineFactory(config={"stages": [{"name": "e", "type": "echo"}]})
    PipelineFactory(config={"stages": [{"name": "x", "type": "no_such_type"}]})
    PipelineFactory(is_active=False, config={"stages": [{"name": "s", "type": "test_isolated_spin"}]})
    assert prestart_wanted() is False

    PipelineFactory(config={"stages": [{"name": "e", "type": "echo"}, {"name": "s", "type": "test_isolated_spin"}]})
    assert prestart_wanted() is True


@pytest.mark.parametrize(
    ("mode", "stage_type", "wanted"),
    [("always", "echo", True), ("never", "test_isolated_spin", False)],
    ids=["always-without-isolated-stages", "never-with-one"],
)
def test_the_prestart_setting_overrides_what_the_pipelines_need(db, settings, mode, stage_type, wanted):
    from pipelines.isolation import prestart_wanted

    settings.ISOLATED_STAGES_PRESTART = mode
    PipelineFactory(config={"stages": [{"name": "only", "type": stage_type}]})
    assert prestart_wanted() is wanted


def test_the_worker_middleware_reads_the_pipelines_before_boot_and_starts_the_server_after(
    transactional_db, settings, monkeypatch
):
    from django.db import connection

    from jobs.middleware import IsolatedStages

    started = threading.Event()
    monkeypatch.setattr("pipelines.isolation.warm_up", started.set)
    settings.ISOLATED_STAGES_PRESTART = "auto"
    PipelineFactory(config={"stages": [{"name": "s", "type": "test_isolated_spin"}]})
    middleware = IsolatedStages()

    middleware.before_worker_boot(None, None)
    assert connection.connection is None  # closed: the read holds no connection into the worker's life
    middleware.after_worker_boot(None, None)
    assert started.wait(5)


def test_an_isolated_stage_starts_the_fork_server_itself_when_no_one_did():
    """A worker that did not start the server at boot (`auto` without isolated pipelines) still runs such stages."""
    from multiprocessing import forkserver

    forkserver._forkserver._stop()  # as a worker that never started it
    assert forkserver._forkserver._forkserver_pid is None
    assert run_stage(get_stage_type("test_isolated_spin"), _context(seconds=0), timeout_s=30) == {"done": True}
    assert forkserver._forkserver._forkserver_pid is not None
