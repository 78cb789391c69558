"""Redaction of secrets from anything the audit log stores. The one place that decides it."""

import json
import re
from typing import Any

REDACTED = "[REDACTED]"
# Keys whose values are secrets: passwords, tokens, keys, secrets, credentials.
SENSITIVE_KEY = re.compile(r"pass(word|wd)?|secret|token|key|authorization|credential|signature|cookie|session", re.I)
BODY_MAX_BYTES = 4096


def redact(value: Any, *, _depth: int = 0) -> Any:
    """Return a copy of `value` with every sensitive key's value replaced."""
    if _depth > 20:
        return "[TOO DEEP]"
    if isinstance(value, dict):
        return {
            str(k): (REDACTED if SENSITIVE_KEY.search(str(k)) else redact(v, _depth=_depth + 1))
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [redact(v, _depth=_depth + 1) for v in value]
    return value


def redact_query(query: dict[str, list[str]]) -> dict[str, Any]:
    """Redact a query string's parameters (one value or a list per name)."""
    return {k: (REDACTED if SENSITIVE_KEY.search(k) else (v[0] if len(v) == 1 else v)) for k, v in query.items()}


def summarize_body(data: Any, size: int | None = None) -> dict[str, Any]:
    """A redacted body, truncated past BODY_MAX_BYTES with its size noted."""
    redacted = redact(data)
    encoded = json.dumps(redacted, default=str)
    summary: dict[str, Any] = {"size": size if size is not None else len(encoded)}
    if len(encoded) > BODY_MAX_BYTES:
        summary["truncated"] = True
        summary["preview"] = encoded[:BODY_MAX_BYTES]
    else:
        summary["data"] = redacted
    return summary
