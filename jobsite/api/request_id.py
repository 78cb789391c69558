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
        token = request_id_var.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            request_id_var.reset(token)
        response[REQUEST_ID_HEADER] = request_id
        return response


class RequestIdLogFilter(logging.Filter):
    """Add `request_id` to every log record."""

    def filter(self, record):
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        return True
