"""One error shape for every API response.

`{"error": "<machine_code>", "message": "<sentence>", "details": {...}, "request_id": "<id>"}`

A view that serves a seed service's contract may add what that contract's
clients read (e.g. FastAPI's `detail`) and use its status codes: it names an
`error_contract` whose `render(exc, response, view)` adapts the envelope.
"""

import json
import logging
import re

from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.db import DatabaseError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.renderers import BrowsableAPIRenderer
from rest_framework.response import Response

from .request_id import current_request_id

logger = logging.getLogger(__name__)


class ApiError(exceptions.APIException):
    """An API error with its own machine code, message and extra details."""

    def __init__(self, *, status_code: int, code: str, message: str, details: dict | None = None):
        super().__init__(detail=message, code=code)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.details = details or {}


_CODES = {
    exceptions.ValidationError: ("validation_error", "The request is invalid; see details."),
    exceptions.ParseError: ("malformed_request", None),
    exceptions.AuthenticationFailed: ("authentication_failed", None),
    exceptions.NotAuthenticated: ("not_authenticated", None),
    exceptions.PermissionDenied: ("permission_denied", None),
    exceptions.NotFound: ("not_found", "Not found."),
    exceptions.MethodNotAllowed: ("method_not_allowed", None),
    exceptions.NotAcceptable: ("not_acceptable", None),
    exceptions.UnsupportedMediaType: ("unsupported_media_type", None),
    exceptions.Throttled: ("throttled", None),
}


def error_body(code: str, message: str, details: dict | None = None) -> dict:
    """Build the error envelope for the current request."""
    return {
        "error": code,
        "message": message,
        "details": details or {},
        "request_id": current_request_id(),
    }


def exception_handler(exc, context):
    """DRF exception handler that renders every error in the project's shape.

    When the view serves a seed contract (`view.error_contract`), the contract
    adapts the response: the envelope and its request id always stay.
    """
    response = _envelope_response(exc)
    view = context.get("view")
    contract = getattr(view, "error_contract", None)
    if contract is not None:
        response = contract.render(exc, response, view)
    return response


def _envelope_response(exc) -> Response:
    if isinstance(exc, ApiError):
        return Response(error_body(exc.code, exc.message, exc.details), status=exc.status_code)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, RequestDataTooBig):
        return Response(
            error_body("payload_too_large", "The request body is larger than the server accepts."),
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )

    elif isinstance(exc, DatabaseError):
        logger.exception("Database error while serving an API request")
        return Response(
            error_body("service_unavailable", "The database is unavailable; try again shortly."),
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
        )

    if not isinstance(exc, exceptions.APIException):
        logger.exception("Unhandled error while serving an API request")
        return Response(
            error_body("internal_error", "The server failed to handle the request."),
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )

    code, message = "error", None
    for exc_class in type(exc).__mro__:
        if exc_class in _CODES:
            code, message = _CODES[exc_class]
            break
    if isinstance(exc, exceptions.ValidationError):
        details = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
    elif isinstance(exc.detail, dict):
        # simplejwt puts its message under "detail", beside a code and sub-messages.
        message = str(exc.detail.get("detail", message or code))
        details = {k: v for k, v in exc.detail.items() if k not in ("detail", "code")}
    else:
        details = {}
        message = message or str(exc.detail)

    response = Response(error_body(code, message, details), status=exc.status_code)
    if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
        response["Retry-After"] = str(int(exc.wait))
    auth_header = getattr(exc, "auth_header", None)
    if auth_header:
        response["WWW-Authenticate"] = auth_header
    return response


def is_api_path(path: str) -> bool:
    """Tell whether `path` is one the API serves (`API_URL_REGEX`: /api/, and the seeds' /tasks and /jobs)."""
    return re.match(settings.API_URL_REGEX, path) is not None


# What an error response of the API that did not come from a DRF view says, by status.
_STATUS_ERRORS = {
    400: ("malformed_request", "The request is malformed."),
    401: ("not_authenticated", "Authentication credentials were not provided."),
    403: ("permission_denied", "You do not have permission to perform this action."),
    404: ("not_found", "No such endpoint."),
    405: ("method_not_allowed", None),
    413: ("payload_too_large", "The request body is larger than the server accepts."),
    500: ("internal_error", "The server failed to handle the request."),
}


class ApiErrorShapeMiddleware:
    """Answer every error of the API (`is_api_path`) in the JSON error shape, DEBUG or not.

    DRF views already do; this covers the rest: paths no route matches
    (Django's 404 page, its technical page under DEBUG), errors raised outside
    a view (500, Django's debug page under DEBUG, the traceback still logged by
    `django.request`), and DRF responses whose renderer is not JSON (the
    schema's YAML, the docs' HTML). The browsable API keeps its HTML pages.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if (
            is_api_path(request.path_info)
            and response.status_code >= 400
            and not response.streaming
            and "json" not in response.get("Content-Type", "")
            and not isinstance(getattr(response, "accepted_renderer", None), BrowsableAPIRenderer)
        ):
            code, message = _STATUS_ERRORS.get(response.status_code, ("error", None))
            if response.status_code == 405:
                message = f'Method "{request.method}" not allowed.'
            response.content = json.dumps(error_body(code, message or response.reason_phrase))
            response["Content-Type"] = "application/json"
            if response.has_header("Content-Length"):
                response["Content-Length"] = str(len(response.content))
        return response
