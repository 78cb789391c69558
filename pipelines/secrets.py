"""Credentials in pipeline configs: secrets referenced by name, and masked header values.

A stage's params may name a secret instead of embedding it:
`{"$secret": "UPSTREAM_TOKEN"}` stands for the value of the environment variable
`PIPELINE_SECRET_UPSTREAM_TOKEN` (read once, into `settings.PIPELINE_SECRETS`).
The name is checked when the pipeline is written; the value is looked up only
inside the stage that sends it, and never stored.

Header values whose names look like credentials (`Authorization`, `Cookie`,
`X-Api-Key`, anything with auth, token, key, secret or password in it) are
shown as `MASK` on every read of a config. A write that sends `MASK` back for
such a header keeps the value stored for that header of the same stage.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from typing import Any

from django.conf import settings

MASK = "********"
SECRET_NAME_PATTERN = r"^[A-Za-z0-9_]{1,100}$"  # noqa: S105 (a pattern, not a password)
SECRET_REFERENCE_SCHEMA = {
    "type": "object",
    "properties": {"$secret": {"type": "string", "pattern": SECRET_NAME_PATTERN}},
    "required": ["$secret"],
    "additionalProperties": False,
}
_CREDENTIAL_HEADER = re.compile(r"auth|cookie|token|key|secret|pass(word|wd)|credential|session|signature", re.I)


class SecretNotConfigured(LookupError):
    """A stage names a secret this process does not have."""

    retryable = False  # the environment does not change between attempts


def is_secret_reference(value: Any) -> bool:
    """Whether `value` is `{"$secret": "<name>"}`."""
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("$secret"), str)


def secret_references(value: Any) -> Iterator[str]:
    """Yield the name of every secret referenced anywhere in `value`."""
    if is_secret_reference(value):
        yield value["$secret"]
    elif isinstance(value, dict):
        for item in value.values():
            yield from secret_references(item)
    elif isinstance(value, list):
        for item in value:
            yield from secret_references(item)


def unknown_secrets(value: Any) -> list[str]:
    """Describe each secret referenced in `value` that is not configured."""
    return [
        f"Unknown secret {name!r}: set the environment variable PIPELINE_SECRET_{name} on the web server "
        "and the workers."
        for name in dict.fromkeys(secret_references(value))
        if name not in settings.PIPELINE_SECRETS
    ]


def resolve_secret(reference: dict, used: dict[str, str]) -> str:
    """The value of the secret `reference` names; it is recorded in `used` (name -> value)."""
    name = reference["$secret"]
    try:
        value = settings.PIPELINE_SECRETS[name]
    except KeyError:
        raise SecretNotConfigured(
            f"The secret {name!r} is not configured in this process (environment variable PIPELINE_SECRET_{name})."
        ) from None
    used[name] = value
    return value


def scrub_secrets(value: Any, used: dict[str, str]) -> Any:
    """Return `value` with every occurrence of a used secret's value replaced by its name."""
    if not used:
        return value
    if isinstance(value, str):
        for name, secret in used.items():
            if secret and secret in value:
                value = value.replace(secret, f"[secret {name}]")
        return value
    if isinstance(value, dict):
        return {scrub_secrets(key, used): scrub_secrets(item, used) for key, item in value.items()}
    if isinstance(value, list):
        return [scrub_secrets(item, used) for item in value]
    return value


def is_credential_header(name: str) -> bool:
    """Whether a header of this name carries a credential (its value is masked on reads)."""
    return bool(_CREDENTIAL_HEADER.search(name))


def _stage_headers(config: Any) -> Iterator[tuple[int, dict, dict]]:
    """Yield (index, stage, headers) for each stage of `config` whose params hold a headers object."""
    stages = config.get("stages") if isinstance(config, dict) else None
    for index, stage in enumerate(stages if isinstance(stages, list) else []):
        params = stage.get("params") if isinstance(stage, dict) else None
        headers = params.get("headers") if isinstance(params, dict) else None
        if isinstance(headers, dict):
            yield index, stage, headers


def config_masked(config: Any) -> Any:
    """A copy of `config` with the value of every credential header replaced by MASK.

    Secret references (`{"$secret": ...}`) are names, not values: they are shown.
    """
    if not any(True for _ in _stage_headers(config)):
        return config
    masked = copy.deepcopy(config)
    for _, _, headers in _stage_headers(masked):
        for name, value in headers.items():
            if isinstance(value, str) and is_credential_header(name):
                headers[name] = MASK
    return masked


def _masked(headers: dict) -> list[str]:
    return [name for name, value in headers.items() if value == MASK and is_credential_header(name)]


def config_unmasked(config: Any, *, stored: Any) -> tuple[Any, dict[str, list[str]]]:
    """Put the stored values back where `config` has MASK for a credential header.

    A masked value is matched to the header of the same name (in any case) of
    the stored stage with the same name. Returns the config and, for a MASK
    with no stored value to keep, errors by field path. (MASK in a header that
    is not a credential is an ordinary value.)
    """
    if not any(_masked(headers) for _, _, headers in _stage_headers(config)):
        return config, {}
    stored_headers = {stage.get("name"): headers for _, stage, headers in _stage_headers(stored)}
    restored = copy.deepcopy(config)
    errors: dict[str, list[str]] = {}
    for index, stage, headers in _stage_headers(restored):
        previous = {name.lower(): value for name, value in stored_headers.get(stage.get("name"), {}).items()}
        for name in _masked(headers):
            kept = previous.get(name.lower())
            if isinstance(kept, str):
                headers[name] = kept
            else:
                errors[f"config.stages[{index}].params.headers.{name}"] = [
                    f"{MASK!r} stands for a stored value, and this stage has none for this header: "
                    'send the value, or a {"$secret": NAME} reference.'
                ]
    return restored, errors
