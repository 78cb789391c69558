"""LOG_FORMAT=json: one JSON object per line, with the request and the job a record is about."""

import json
import logging
import sys

import pytest

from jobsite.api.request_id import request_id_var
from jobsite.logging import JsonFormatter
from jobsite.observability.jobs import job_logging

KEYS = ["time", "level", "logger", "message", "request_id", "job_id", "worker", "pipeline", "duration_ms"]


def record(message="Job %s done.", *args, exc_info=None, extra=None) -> logging.LogRecord:
    """A record made as logging makes them (through the record factory the LOGGING config installs)."""
    logger = logging.getLogger("jobs.run")
    return logger.makeRecord(logger.name, logging.INFO, __file__, 1, message, args or ("j1",), exc_info, extra=extra)


def formatted(rec: logging.LogRecord) -> dict:
    [line] = JsonFormatter().format(rec).splitlines()
    return json.loads(line)


@pytest.fixture
def outside_any_request():
    """A thread that served no request (a test client's request leaves its id behind, as a server thread does)."""
    token = request_id_var.set("-")
    yield
    request_id_var.reset(token)


def test_every_line_has_the_same_keys_null_where_they_do_not_apply(outside_any_request):
    entry = formatted(record())
    assert list(entry) == KEYS
    assert entry["message"] == "Job j1 done."
    assert (entry["level"], entry["logger"]) == ("INFO", "jobs.run")
    assert entry["time"].endswith("+00:00")
    assert [entry[key] for key in KEYS[4:]] == [None] * 5


def test_records_made_while_a_job_runs_carry_the_job_and_its_request_id():
    token = request_id_var.set("web-request")
    try:
        with job_logging(job_id="j-42", request_id="client-req-7", pipeline="reports", worker="box:1:ab/Thread-1"):
            inside = formatted(record(extra={"duration_ms": 12}))
        after = formatted(record())
    finally:
        request_id_var.reset(token)

    assert inside["request_id"] == "client-req-7"
    assert (inside["job_id"], inside["pipeline"], inside["worker"]) == ("j-42", "reports", "box:1:ab/Thread-1")
    assert inside["duration_ms"] == 12
    # The context ends with the block: the thread's own request id is back, the job is gone.
    assert (after["request_id"], after["job_id"], after["pipeline"]) == ("web-request", None, None)


def test_a_job_created_outside_a_request_has_no_request_id(outside_any_request):
    with job_logging(job_id="j-1", request_id="", pipeline="p"):
        assert formatted(record())["request_id"] is None


def test_line_breaks_and_tracebacks_stay_inside_one_line():
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        rec = record("failed: %s", "a\nb", exc_info=sys.exc_info())
    text = JsonFormatter().format(rec)
    assert len(text.splitlines()) == 1
    entry = json.loads(text)
    assert entry["message"] == "failed: a\nb"
    assert "ValueError: boom" in entry["exc_info"]
