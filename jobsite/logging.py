"""Log formatters: one line per record, whatever the logged values contain.

Log messages carry user-supplied values (paths, parameters, names). A newline
in one would start a forged line in the console log, so the console formatter
escapes control characters in every message, once, here: no call site has to
remember. Tracebacks are appended unescaped and stay multi-line. The JSON
formatter needs no escaping: JSON strings cannot contain a raw line break.
"""

import json
import logging
import re
from datetime import UTC, datetime

# C0 and C1 controls (but tab), DEL, the Unicode line/paragraph separators and
# unpaired surrogates (which the log stream could not even encode).
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r"}


def _escaped(match: re.Match) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_control_characters(text: str) -> str:
    """Return `text` with line breaks and other control characters written as escapes (`\\n`, `\\x1b`)."""
    return _CONTROL.sub(_escaped, text)


class ConsoleFormatter(logging.Formatter):
    """The console format, with control characters in the message and request id escaped."""

    def formatMessage(self, record):
        record.message = escape_control_characters(record.message)
        request_id = getattr(record, "request_id", None)
        if isinstance(request_id, str):
            record.request_id = escape_control_characters(request_id)
        return super().formatMessage(record)


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object per line."""

    def format(self, record):
        payload = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
        }
        if record.exc_info:
            payload["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)
