"""Request ids: taken from `X-Request-ID` or generated, echoed and logged."""

import contextvars
import logging
import re
import uuid

REQUEST_ID_HEADER = "X-Request-ID"
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


def current_request_id() -> str:
    """Return the id of the request being served, or "-" outside a request."""
    return request_id_var.get()


class RequestIdMiddleware:
    """Give every request an id, keep it for logging, and echo it in the response.

    A client-supplied id is kept when it is a plain token of at most 128
    characters; anything else is replaced so that logs cannot be forged.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        supplied = request.headers.get(REQUEST_ID_HEADER, "")
        request_id = supplied if _VALID_REQUEST_ID.match(supplied) else uuid.uuid4().hex
        request.request_id = request_id
        # Not reset when the response leaves: Django logs 4xx/5xx responses after
        # the middleware chain returns, and those lines must carry the id too.
        # The next request served in this thread or task sets its own.
        request_id_var.set(request_id)
        response = self.get_response(request)
        response[REQUEST_ID_HEADER] = request_id
        return response


def _install_record_factory() -> None:
    """Stamp every log record with the current request id, and the job a worker
    thread runs (`job_id`, `pipeline`, `worker`, only while it runs one), when
    it is created, so that any handler or formatter (not just ours) sees them."""
    from jobsite.logging import job_log_context

    previous = logging.getLogRecordFactory()
    if getattr(previous, "adds_request_id", False):
        return

    def factory(*args, **kwargs):
        record = previous(*args, **kwargs)
        record.request_id = request_id_var.get()
        job = job_log_context.get()
        if job is not None:
            record.job_id, record.pipeline, record.worker = job.job_id, job.pipeline, job.worker
        return record

    factory.adds_request_id = True
    logging.setLogRecordFactory(factory)


class RequestIdLogFilter(logging.Filter):
    """Make sure every record has `request_id` (used by the LOGGING formatters).

    Configuring it also installs a record factory that stamps the request id
    and the running job on every record at creation.
    """

    def __init__(self, name=""):
        super().__init__(name)
        _install_record_factory()

    def filter(self, record):
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        return True
