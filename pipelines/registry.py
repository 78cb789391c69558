"""The stage registry: stage types that pipelines are built from.

A workflow author registers a function as a stage type::

    from pipelines.registry import StageContext, stage

    @stage("shout", params_schema={"type": "object", "properties": {"suffix": {"type": "string"}}})
    def shout(ctx: StageContext) -> dict:
        return {"text": str(ctx.previous.get("text", "")).upper() + ctx.params.get("suffix", "!")}

The function receives a :class:`StageContext` and returns JSON-serialisable output,
which becomes the next stage's `previous`.

A stage type runs **isolated** by default: in a child process of the worker,
killed at its `timeout_s` and memory-capped, so that a stage burning CPU on
hostile input never stalls the worker's other threads or its heartbeat (see
:mod:`pipelines.isolation`). A light stage that only waits on I/O may declare
`isolated=False` to run on the worker thread itself, where its timeout is
enforced cooperatively.

A stage type that only computes its output from its context, with no effect
outside the job (no request sent, nothing written), may declare
`idempotent=True`: running it again is harmless, so the worker need not save
its run the moment it finishes. Such a stage's run is written with the next
write the job makes (the next checkpoint, or the job's completion) unless
JOB_CHECKPOINT_INTERVAL_MS has passed since the last one; a worker that dies
in between runs it again. A stage type that is not idempotent (the default)
is checkpointed as soon as it finishes, so it never runs twice for a crash
after it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jsonschema

EMPTY_PARAMS_SCHEMA: dict = {"type": "object", "properties": {}, "additionalProperties": False}


class UnknownStageType(LookupError):
    """No stage type is registered under that name."""


@dataclass(frozen=True)
class StageType:
    """A registered stage function and the schema its params must satisfy."""

    name: str
    func: Callable[[StageContext], Any]
    params_schema: dict
    description: str
    isolated: bool = True
    idempotent: bool = False


@dataclass
class StageContext:
    """What a stage function sees of its job.

    `input` is the job's `input_data`; `previous` is the output of the stage
    before (the job's input for the first stage); `outputs` holds every earlier
    stage's output by stage name.
    """

    job_id: str
    input: dict
    previous: Any
    outputs: dict[str, Any]
    params: dict
    report_progress: Callable[[float], None] = field(default=lambda fraction: None)
    is_cancelled: Callable[[], bool] = field(default=lambda: False)


_registry: dict[str, StageType] = {}


def stage(
    name: str,
    *,
    params_schema: dict | None = None,
    description: str | None = None,
    isolated: bool = True,
    idempotent: bool = False,
):
    """Register the decorated function as the stage type `name`.

    `isolated` (the default) runs it in a child process with a hard deadline;
    `False` runs it on the worker thread (for light, I/O-bound stages).
    `idempotent` declares that running it again has no effect outside the job
    (its checkpoint may then be written with the job's next write).
    """
    schema = params_schema if params_schema is not None else EMPTY_PARAMS_SCHEMA
    jsonschema.Draft202012Validator.check_schema(schema)

    def decorator(func: Callable[[StageContext], Any]) -> Callable[[StageContext], Any]:
        if name in _registry and _registry[name].func is not func:
            raise ValueError(f"Stage type {name!r} is already registered.")
        doc = (func.__doc__ or "").strip().splitlines()
        _registry[name] = StageType(
            name=name,
            func=func,
            params_schema=schema,
            description=description or (doc[0] if doc else ""),
            isolated=isolated,
            idempotent=idempotent,
        )
        return func

    return decorator


def get_stage_type(name: str) -> StageType:
    """Return the stage type registered as `name`."""
    try:
        return _registry[name]
    except KeyError:
        raise UnknownStageType(name) from None


def stage_types() -> list[StageType]:
    """Every registered stage type, by name."""
    return [_registry[name] for name in sorted(_registry)]


def params_errors(stage_type: StageType, params: Any) -> list[str]:
    """List what is wrong with `params` for `stage_type` (empty when valid)."""
    validator = jsonschema.Draft202012Validator(stage_type.params_schema)
    return [
        f"{'.'.join(str(p) for p in error.absolute_path) or 'params'}: {error.message}"
        for error in sorted(validator.iter_errors(params), key=lambda e: list(e.absolute_path))
    ]
