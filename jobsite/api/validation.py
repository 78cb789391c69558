"""Checks on request values that the database or the parser cannot be trusted with.

PostgreSQL refuses a NUL character (`\\u0000`) in `text` and `jsonb`, and a lone
UTF-16 surrogate cannot be encoded at all; SQLite stores both silently. Values
that will be stored are checked here, so that both databases answer the same
400 instead of PostgreSQL's error surfacing as a 503.
"""

from __future__ import annotations

import json
import re
from typing import Any

from rest_framework import serializers

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def _problem(text: str) -> str | None:
    match = _UNSTORABLE.search(text)
    if match is None:
        return None
    if match.group() == "\x00":
        return "a NUL character (\\u0000)"
    return f"an unpaired surrogate (\\u{ord(match.group()):04x})"


def _path(parent: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{parent}[{key}]"
    label = key if _IDENTIFIER.match(key) else None
    if label is None:
        return f"{parent}[{json.dumps(key)}]"
    return f"{parent}.{label}" if parent else label


def unstorable_text(value: Any) -> tuple[str, str] | None:
    """Find the first string (or object key) in `value` that cannot be stored.

    Return `(path, problem)` (the path is empty for a top-level string, else like
    `items[2].name`), or None when every string is storable. Walks iteratively, so
    any depth is safe.
    """
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            problem = _problem(item)
            if problem:
                return path, problem
        elif isinstance(item, dict):
            for key, child in reversed(item.items()):
                key = str(key)
                problem = _problem(key)
                if problem:
                    return _path(path, key), f"{problem} in a key"
                stack.append((_path(path, key), child))
        elif isinstance(item, (list, tuple)):
            stack.extend((_path(path, index), child) for index, child in reversed(list(enumerate(item))))
    return None


def validate_storable(value: Any) -> None:
    """DRF validator: refuse NUL characters and unpaired surrogates anywhere in `value`.

    Works on strings and on JSON values (object keys included); the message
    names the path inside a JSON value.
    """
    found = unstorable_text(value)
    if found is None:
        return
    path, problem = found
    where = f" at {path}" if path else ""
    raise serializers.ValidationError(f"Contains {problem}{where}, which cannot be stored.")


def json_depth_exceeds(value: Any, limit: int) -> bool:
    """Tell whether a parsed JSON value nests arrays/objects more than `limit` levels deep."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False
