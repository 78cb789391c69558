"""A JSON parser that enforces the request body size and nesting limits."""

import io

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from rest_framework.parsers import JSONParser

from .errors import ApiError
from .validation import json_depth_exceeds


def _too_deep(limit: int) -> ApiError:
    return ApiError(
        status_code=400,
        code="malformed_request",
        message=f"The JSON body is nested more than {limit} levels deep.",
        details={"max_depth": limit},
    )


class LimitedJSONParser(JSONParser):
    """Parse JSON, refusing bodies over `DATA_UPLOAD_MAX_MEMORY_SIZE` (413) or
    nested deeper than `API_MAX_JSON_DEPTH` (400).

    DRF reads the request stream itself, bypassing Django's own check, so the
    size limit is applied here by reading at most one byte past it. The depth
    limit protects everything that walks the data afterwards (validation,
    redaction, storage); Python's own decoder gives up near 1000 levels with a
    RecursionError, which is answered the same way.
    """

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        body = stream.read(limit + 1) if stream is not None else b""
        if limit is not None and len(body) > limit:
            raise RequestDataTooBig("Request body exceeded the upload limit.")
        # The audit log keeps a redacted summary of the body; Django can no
        # longer read it once DRF has consumed the stream.
        django_request = getattr((parser_context or {}).get("request"), "_request", None)
        if django_request is not None:
            django_request.audit_body_size = len(body)
        max_depth = settings.API_MAX_JSON_DEPTH
        try:
            data = super().parse(io.BytesIO(body), media_type, parser_context)
        except RecursionError:
            raise _too_deep(max_depth) from None
        # Fewer opening brackets than the limit cannot nest past it: skip the walk.
        if body.count(b"[") + body.count(b"{") > max_depth and json_depth_exceeds(data, max_depth):
            raise _too_deep(max_depth)
        if django_request is not None:
            django_request.audit_body = data
        return data
