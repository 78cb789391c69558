"""Log formatters and the job a record is about: one line per record, whatever the logged values contain.

Log messages carry user-supplied values (paths, parameters, names). A newline
in one would start a forged line in the console log, so the console formatter
escapes control characters in every message, once, here: no call site has to
remember. Tracebacks are appended unescaped and stay multi-line. The JSON
formatter needs no escaping: JSON strings cannot contain a raw line break.

Every record carries the request id (`request_id`) of the API call it belongs
to; a worker's records about a job also carry the job's (`job_id`, `pipeline`,
`worker`) while it runs, and the request id of the call that created the job
(see :func:`jobsite.observability.jobs.job_logging`). The record factory
installed by :class:`jobsite.api.request_id.RequestIdLogFilter` stamps them.
"""

import contextvars
import json
import logging
import re
from datetime import UTC, datetime
from typing import NamedTuple

# C0 and C1 controls (but tab), DEL, the Unicode line/paragraph separators and
# unpaired surrogates (which the log stream could not even encode).
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r"}


class JobLogContext(NamedTuple):
    """The job a worker thread is running, for its log records."""

    job_id: str
    pipeline: str
    worker: str | None


job_log_context: contextvars.ContextVar[JobLogContext | None] = contextvars.ContextVar("job_log_context", default=None)


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
    """Format a record as one JSON object per line, with the same keys on every line.

    `time`, `level`, `logger`, `message`, `request_id`, `job_id`, `worker`,
    `pipeline`, `duration_ms` (null where they do not apply), and
    `exc_info` when the record has a traceback.
    """

    def format(self, record):
        request_id = getattr(record, "request_id", None)
        payload = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": request_id if request_id and request_id != "-" else None,
            "job_id": getattr(record, "job_id", None),
            "worker": getattr(record, "worker", None),
            "pipeline": getattr(record, "pipeline", None),
            "duration_ms": getattr(record, "duration_ms", None),
        }
        if record.exc_info:
            payload["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)
