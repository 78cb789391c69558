"""Log lines: one per record, whatever a client puts in the values logged."""

import logging
import sys

import pytest
from rest_framework.test import APIClient

from jobsite.logging import ConsoleFormatter, JsonFormatter, escape_control_characters
from tests import credentials

FORGED = "2030-01-01 00:00:00,000 INFO accounts [-] admin password reset"


def configured_formatter() -> logging.Formatter:
    """The formatter of the handler settings.LOGGING installs on the root logger."""
    return next(h for h in logging.getLogger().handlers if h.name == "default").formatter


def test_console_logging_uses_the_escaping_formatter(settings):
    assert settings.LOGGING["formatters"]["console"]["()"] == "jobsite.logging.ConsoleFormatter"
    assert isinstance(configured_formatter(), ConsoleFormatter | JsonFormatter)


def test_a_line_break_in_a_request_path_cannot_forge_a_log_line(user, caplog, monkeypatch):
    from audit.models import AuditLog

    def broken(**kwargs):
        raise RuntimeError("audit table unavailable")

    # A failed audit write logs the resource id, which comes from the request's path.
    monkeypatch.setattr(AuditLog.objects, "create", broken)
    caplog.set_level(logging.ERROR, logger="audit.services")
    response = APIClient().get(f"/api/v1/jobs/x%0a{FORGED}/", **credentials.jwt_for(user))
    assert response.status_code == 404

    [record] = [r for r in caplog.records if r.name == "audit.services"]
    assert f"x\n{FORGED}" in record.getMessage()  # the raw value did carry a line break
    for formatter in (configured_formatter(), ConsoleFormatter("%(levelname)s %(message)s")):
        text = formatter.format(record)
        assert f"x\\n{FORGED}" in text
        assert not any(line.startswith(FORGED) for line in text.splitlines())
        assert "Traceback" in text  # the exception is still there


def test_any_logged_value_stays_on_its_line(caplog):
    caplog.set_level(logging.INFO, logger="jobs")
    logging.getLogger("jobs").info("Job %s failed: %s", "j1", f"bad input\n{FORGED}")
    [line] = configured_formatter().format(caplog.records[-1]).splitlines()
    assert f"bad input\\n{FORGED}" in line


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("a\nb\r\nc", "a\\nb\\r\\nc"),
        ("\x1b[31mred", "\\x1b[31mred"),
        ("nul\x00", "nul\\x00"),
        ("del\x7f c1\x85", "del\\x7f c1\\x85"),
        ("line\u2028sep\u2029", "line\\u2028sep\\u2029"),
        ("lone\ud800", "lone\\ud800"),
        ("tab\tand é ünïcode ✓", "tab\tand é ünïcode ✓"),
    ],
)
def test_control_characters_are_escaped(raw, escaped):
    assert escape_control_characters(raw) == escaped


def test_tracebacks_still_print_on_several_lines():
    formatter = ConsoleFormatter("%(levelname)s %(message)s")
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed for %s", ("a\nb",), sys.exc_info())
    first, *rest = formatter.format(record).splitlines()
    assert first == "ERROR failed for a\\nb"
    assert rest[0] == "Traceback (most recent call last):"
    assert rest[-1] == "ValueError: boom"
    assert len(rest) >= 3
