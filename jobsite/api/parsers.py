"""A JSON parser that enforces the request body limit."""

import io

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from rest_framework.parsers import JSONParser


class LimitedJSONParser(JSONParser):
    """Parse JSON, refusing bodies over `DATA_UPLOAD_MAX_MEMORY_SIZE` (413).

    DRF reads the request stream itself, bypassing Django's own check, so the
    limit is applied here by reading at most one byte past it.
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
        data = super().parse(io.BytesIO(body), media_type, parser_context)
        if django_request is not None:
            django_request.audit_body = data
        return data
