"""Pagination with the bounds of the API contracts and a bounded count.

Limit/offset for jobsite's lists (`{count, count_estimated, next, previous,
results}`) and for the jobs list, whose envelope is the LLM workflow service's
(`{jobs, total, limit, offset}` plus `total_estimated`, `next`, `previous`);
page/page_size for the task API (seed 003).
"""

import math

from rest_framework import pagination
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from jobsite.counting import bounded_count


def _bounded_int(request, name: str, *, default: int, low: int, high: int | None) -> int:
    """An integer query parameter within its bounds; a 400 naming it otherwise.

    The message's error code says what was wrong (`int_parsing`,
    `greater_than_equal`, `less_than_equal`), for contracts that report it.
    """
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or value < low or (high is not None and value > high):
        bounds = f"from {low} to {high}" if high is not None else f"{low} or more"
        code = "int_parsing" if value is None else "greater_than_equal" if value < low else "less_than_equal"
        raise ValidationError({name: [f"Must be an integer {bounds}; got {raw!r}."]}, code=code)
    return value


class LimitOffsetPagination(pagination.LimitOffsetPagination):
    """`limit` defaults to 50, 1..200; `offset` >= 0; anything else is a 400.

    A numeric `limit_results` (1..500) overrides `limit`. `count` is exact up to
    `API_COUNT_EXACT_MAX` rows; past that, on PostgreSQL, it is the planner's
    estimate and `count_estimated` is true, so a list over millions of rows
    never pays for a full `COUNT(*)`.
    """

    default_limit = 50
    max_limit = 200
    results_override_param = "limit_results"

    def get_limit(self, request):
        override = request.query_params.get(self.results_override_param, "")
        if override.isascii() and override.isdigit():
            return int(override)  # range checked by the filter
        return _bounded_int(request, self.limit_query_param, default=self.default_limit, low=1, high=self.max_limit)

    def get_offset(self, request):
        return _bounded_int(request, self.offset_query_param, default=0, low=0, high=None)

    def get_count(self, queryset):
        self.count, self.count_estimated = bounded_count(queryset)
        return self.count

    def get_paginated_response(self, data):
        return Response(
            {
                "count": self.count,
                "count_estimated": self.count_estimated,
                "next": self.get_next_link(),
                "previous": self.get_previous_link(),
                "results": data,
            }
        )

    def get_paginated_response_schema(self, schema):
        response = super().get_paginated_response_schema(schema)
        response["properties"]["count_estimated"] = {
            "type": "boolean",
            "description": "True when `count` is the database's estimate (lists over API_COUNT_EXACT_MAX rows).",
        }
        return response


class JobListPagination(LimitOffsetPagination):
    """The jobs list's envelope: the LLM workflow service's `JobsListResponse` and jobsite's extras.

    `{"jobs": [...], "total", "limit", "offset", "total_estimated", "next",
    "previous"}`: `total` counts every match before paging (bounded like
    `count`), `limit` is the page size served (a numeric `limit_results`
    included), `next`/`previous` are links or null.
    """

    items_key = "jobs"

    def get_paginated_response(self, data):
        return Response(
            {
                self.items_key: data,
                "total": self.count,
                "limit": self.limit,
                "offset": self.offset,
                "total_estimated": self.count_estimated,
                "next": self.get_next_link(),
                "previous": self.get_previous_link(),
            }
        )

    def get_results(self, data):
        return data[self.items_key]

    def get_paginated_response_schema(self, schema):
        link = {"type": "string", "nullable": True, "format": "uri"}
        return {
            "type": "object",
            "required": [self.items_key, "total", "limit", "offset", "total_estimated", "next", "previous"],
            "properties": {
                self.items_key: schema,
                "total": {"type": "integer", "description": "Every match before paging."},
                "limit": {"type": "integer", "description": "The page size served."},
                "offset": {"type": "integer"},
                "total_estimated": {
                    "type": "boolean",
                    "description": "True when `total` is the database's estimate (over API_COUNT_EXACT_MAX rows).",
                },
                "next": link,
                "previous": link,
            },
        }


class PageNumberPagination(pagination.BasePagination):
    """`page` (from 1, default 1) and `page_size` (1..100, default 50); anything else is a 400.

    `{<items_key>: [...], "total", "page", "page_size", "pages",
    "total_estimated"}`; a page past the end is empty and keeps the total.
    """

    items_key = "results"
    page_query_param = "page"
    page_size_query_param = "page_size"
    default_page_size = 50
    max_page_size = 100

    def paginate_queryset(self, queryset, request, view=None):
        self.page = _bounded_int(request, self.page_query_param, default=1, low=1, high=None)
        self.page_size = _bounded_int(
            request, self.page_size_query_param, default=self.default_page_size, low=1, high=self.max_page_size
        )
        self.count, self.count_estimated = bounded_count(queryset)
        offset = (self.page - 1) * self.page_size
        if offset >= self.count:
            return []
        return list(queryset[offset : offset + self.page_size])

    def get_paginated_response(self, data):
        return Response(
            {
                self.items_key: data,
                "total": self.count,
                "page": self.page,
                "page_size": self.page_size,
                "pages": math.ceil(self.count / self.page_size),
                "total_estimated": self.count_estimated,
            }
        )

    def get_results(self, data):
        return data[self.items_key]

    def get_paginated_response_schema(self, schema):
        return {
            "type": "object",
            "required": [self.items_key, "total", "page", "page_size", "pages", "total_estimated"],
            "properties": {
                self.items_key: schema,
                "total": {"type": "integer", "description": "Every match before paging."},
                "page": {"type": "integer"},
                "page_size": {"type": "integer"},
                "pages": {"type": "integer"},
                "total_estimated": {"type": "boolean"},
            },
        }

    def get_schema_operation_parameters(self, view):
        return [
            {
                "name": self.page_query_param,
                "required": False,
                "in": "query",
                "description": "Page number, from 1 (default 1).",
                "schema": {"type": "integer", "minimum": 1},
            },
            {
                "name": self.page_size_query_param,
                "required": False,
                "in": "query",
                "description": f"Results per page, 1..{self.max_page_size} (default {self.default_page_size}).",
                "schema": {"type": "integer", "minimum": 1, "maximum": self.max_page_size},
            },
        ]
