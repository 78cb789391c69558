"""Running one stage: on the worker thread, or isolated in a child process with a hard deadline.

An isolated stage runs in a process forked from a fork server that has Django
loaded, so it starts in a few milliseconds. The worker thread waits for it
without holding the GIL, so the worker's other threads, its heartbeat and its
other jobs keep running however much CPU the stage burns. At `timeout_s` the
child is killed (SIGKILL: a regex or a C extension cannot ignore it) and the
stage fails with :class:`StageTimeout`, like any timeout, so its retries
apply. The child's address space is capped at `STAGE_MEMORY_LIMIT_MB`.

A stage type that declared `isolated=False` runs on the worker thread, its
timeout enforced by an asynchronous exception (which interrupts Python code,
not a blocking call or a long C call): fit for light stages that wait on I/O.
"""

from __future__ import annotations

import json
import multiprocessing
import time
import traceback
from typing import Any

from django.conf import settings

from .deadline import InterruptibleStage, StageDeadline, StageTimeout
from .registry import StageContext, StageType, UnknownStageType, get_stage_type
from .stages import StageCancelled

# How often the waiting worker thread wakes to check the deadline and cancellation.
_WAIT_STEP_SECONDS = 0.05
# How long a stage's process may take to start (the fork server's first boot included)
# before the stage fails; its timeout counts from the moment it starts.
_START_TIMEOUT_SECONDS = 60


class StageOutputError(TypeError):
    """The stage returned something JSON cannot encode."""

    retryable = False


class IsolatedStageError(Exception):
    """An exception raised by a stage in its child process, described by the child.

    Exceptions do not all cross a process boundary, so the child sends their
    class name, message, traceback and `retryable` flag instead.
    """

    def __init__(self, type_name: str, message: str, trace: str, retryable: bool):
        super().__init__(message)
        self.type_name = type_name
        self.trace = trace
        self.retryable = retryable


class StageProcessDied(Exception):
    """The stage's child process ended without an answer (killed, or over its memory cap)."""


def describe(error: BaseException) -> str:
    """`Type: message` of an error, with the child's type name for isolated stages."""
    name = error.type_name if isinstance(error, IsolatedStageError) else type(error).__name__
    return f"{name}: {error}" if str(error) else name


def error_traceback(error: BaseException) -> str:
    """The traceback to keep on the stage run: the child's own for isolated stages."""
    if isinstance(error, IsolatedStageError):
        return error.trace
    return "".join(traceback.format_exception(error))


def run_stage(stage_type: StageType, context: StageContext, *, timeout_s: float | None) -> Any:
    """Run one stage and return its output, checked to be JSON-serialisable.

    Raises whatever the stage raised (an :class:`IsolatedStageError` standing
    for it when isolated), :class:`StageTimeout`, :class:`StageCancelled`, or
    :class:`StageOutputError`.
    """
    if stage_type.isolated:
        return _run_isolated(stage_type, context, timeout_s)
    with InterruptibleStage(), StageDeadline(timeout_s):
        output = stage_type.func(context)
    try:
        json.dumps(output)
    except (TypeError, ValueError) as exc:
        raise StageOutputError(f"its output is not JSON: {exc}") from exc
    return output


# -- the isolated path -------------------------------------------------------------

_context = None


def _mp():
    """The fork-server context, its server preloading Django (started on first use)."""
    global _context
    if _context is None:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["pipelines._isolated_boot"])
        _context = ctx
    return _context


def warm_up() -> None:
    """Start the fork server now, so the first isolated stage does not wait for it."""
    from multiprocessing import forkserver

    _mp()
    forkserver.ensure_running()


def prestart_wanted() -> bool:
    """Whether a worker starts the fork server at boot (ISOLATED_STAGES_PRESTART).

    `auto` (the default) starts it when an active pipeline has an isolated
    stage: the server is a second Django process (about as much memory as
    the worker), which a worker whose pipelines run only in-process stages
    does without. Otherwise it starts when the first isolated stage runs,
    which then waits for it (about a second, once per worker process).
    """
    mode = settings.ISOLATED_STAGES_PRESTART
    return mode == "always" or (mode == "auto" and _active_pipelines_run_isolated())


def _active_pipelines_run_isolated() -> bool:
    from .selectors import active_pipeline_stage_types

    return any(_is_isolated(name) for name in active_pipeline_stage_types())


def _is_isolated(name: str) -> bool:
    try:
        return get_stage_type(name).isolated
    except UnknownStageType:
        return False


def _run_isolated(stage_type: StageType, context: StageContext, timeout_s: float | None) -> Any:
    mp = _mp()
    parent, child = mp.Pipe()
    fields = {
        "job_id": context.job_id,
        "input": context.input,
        "previous": context.previous,
        "outputs": context.outputs,
        "params": context.params,
    }
    limit_mb = settings.STAGE_MEMORY_LIMIT_MB
    process = mp.Process(target=_child_main, args=(child, stage_type.func, fields, limit_mb), daemon=True)
    with InterruptibleStage():
        process.start()
        child.close()
        try:
            return _await_child(process, parent, context, timeout_s)
        finally:
            if process.is_alive():
                process.kill()
            process.join(timeout=5)
            parent.close()


def _await_child(process, conn, context: StageContext, timeout_s: float | None) -> Any:
    start_by = time.monotonic() + _START_TIMEOUT_SECONDS
    deadline = None  # set when the child says it started: its timeout counts from then
    while True:
        if conn.poll(_WAIT_STEP_SECONDS):
            try:
                message = conn.recv()
            except EOFError:
                process.join(timeout=1)
                raise StageProcessDied(_death(process.exitcode)) from None
            kind = message[0]
            if kind == "started":
                deadline = time.monotonic() + timeout_s if timeout_s else float("inf")
                continue
            if kind == "progress":
                context.report_progress(message[1])
                continue
            if kind == "ok":
                return json.loads(message[1])
            if kind == "cancelled":
                raise StageCancelled()
            _, type_name, text, trace, retryable = message
            if type_name == "StageOutputError":
                raise StageOutputError(text)
            raise IsolatedStageError(type_name, text, trace, retryable)
        if deadline is None and time.monotonic() >= start_by:
            raise StageProcessDied(f"the stage's process did not start within {_START_TIMEOUT_SECONDS} s")
        if deadline is not None and time.monotonic() >= deadline:
            raise StageTimeout(f"exceeded its timeout of {timeout_s:g} s")
        if context.is_cancelled():
            raise StageCancelled()
        if not process.is_alive() and not conn.poll():
            raise StageProcessDied(_death(process.exitcode))


def _death(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        return f"the stage's process was killed by signal {-exitcode}"
    return f"the stage's process exited with code {exitcode} without an answer"


def _child_main(conn, func, fields: dict, limit_mb: int) -> None:
    """Body of the child process: run the stage, send back its output or its error."""
    import resource

    if limit_mb:
        limit = limit_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    context = StageContext(
        **fields,
        report_progress=lambda fraction: conn.send(("progress", float(fraction))),
        is_cancelled=lambda: False,  # the parent watches for cancellation and ends this process
    )
    conn.send(("started",))
    try:
        output = func(context)
        try:
            encoded = json.dumps(output)
        except (TypeError, ValueError) as exc:
            raise StageOutputError(f"its output is not JSON: {exc}") from exc
        conn.send(("ok", encoded))
    except StageCancelled:
        conn.send(("cancelled",))
    except BaseException as exc:  # everything the stage raised is the stage's failure
        retryable = getattr(exc, "retryable", not isinstance(exc, MemoryError))
        conn.send(("error", type(exc).__name__, str(exc), traceback.format_exc(), bool(retryable)))
    finally:
        from django.db import connections

        connections.close_all()
        conn.close()
