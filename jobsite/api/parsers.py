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
        return super().parse(io.BytesIO(body), media_type, parser_context)
