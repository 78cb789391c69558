"""What the audit log stores of a request: secrets redacted, text made storable. The one place that decides it.

A value is a secret when its name says so (`is_sensitive_name`) or when it has
the shape of a credential this service deals in: a JWT (a `eyJ...` base64url
triple, as `/auth/login/` and `/auth/refresh/` hand out) or an API key as
jobsite issues them (`<8-character prefix>.<32-character secret>`).
"""

import json
import re
from typing import Any

from rest_framework_api_key.crypto import KeyGenerator

REDACTED = "[REDACTED]"
BODY_MAX_BYTES = 4096

# A name is sensitive when it contains one of these...
_SENSITIVE_PART = re.compile(
    r"password|passwd|passphrase|secret|token|authorization|credential|signature|cookie|session|jwt|bearer|apikey",
    re.I,
)
# ...or when one of its words (split at `_`, `-`, `.` and camelCase) is one of these.
_SENSITIVE_WORDS = frozenset({"key", "pass", "pwd", "auth", "access", "refresh", "sig", "hmac", "otp"})
_CAMEL = re.compile(r"([a-z0-9])([A-Z])")
_WORD_SPLIT = re.compile(r"[^a-z0-9]+")

_BASE64URL = r"A-Za-z0-9_\-"
# Anchored at the start of a run of token characters and possessive, so that
# matching stays linear on long strings.
_JWT = re.compile(rf"(?<![{_BASE64URL}])eyJ[{_BASE64URL}]{{7,}}+\.[{_BASE64URL}]{{7,}}+\.[{_BASE64URL}]*+")
_KEYS = KeyGenerator()
_API_KEY = re.compile(
    rf"(?<![{_BASE64URL}.])[A-Za-z0-9]{{{_KEYS.prefix_length}}}\.[A-Za-z0-9]{{{_KEYS.secret_key_length}}}"
    rf"(?![{_BASE64URL}]|\.[{_BASE64URL}])"
)

# PostgreSQL stores neither NUL nor an unpaired surrogate, in text or jsonb.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def is_sensitive_name(name: str) -> bool:
    """Tell whether a field, parameter or header called `name` holds a secret."""
    if _SENSITIVE_PART.search(name):
        return True
    words = _WORD_SPLIT.split(_CAMEL.sub(r"\1_\2", name).lower())
    return not _SENSITIVE_WORDS.isdisjoint(words)


def redact_text(text: str) -> str:
    """Replace every JWT- or API-key-shaped part of `text`."""
    if "." not in text:
        return text
    return _API_KEY.sub(REDACTED, _JWT.sub(REDACTED, text))


def redact(value: Any, *, _depth: int = 0) -> Any:
    """Return a copy of `value` with every secret, by name or by shape, replaced."""
    if _depth > 20:
        return "[TOO DEEP]"
    if isinstance(value, dict):
        return {
            str(k): (REDACTED if is_sensitive_name(str(k)) else redact(v, _depth=_depth + 1)) for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [redact(v, _depth=_depth + 1) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


def redact_query(query: dict[str, list[str]]) -> dict[str, Any]:
    """Redact a query string's parameters (one value or a list per name)."""
    return {k: (REDACTED if is_sensitive_name(k) else redact(v[0] if len(v) == 1 else v)) for k, v in query.items()}


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


def _escape_unstorable(match: re.Match) -> str:
    return f"\\u{ord(match.group()):04x}"


def storable(value: Any) -> Any:
    """Return `value` with NUL characters and unpaired surrogates written as text escapes.

    `"a\\x00b"` becomes the six characters `a\\u0000b`, in strings and object
    keys at any depth, so that a row always goes in, on PostgreSQL too.
    """
    if isinstance(value, str):
        return _UNSTORABLE.sub(_escape_unstorable, value) if _UNSTORABLE.search(value) else value
    if isinstance(value, dict):
        return {storable(k): storable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [storable(v) for v in value]
    return value
