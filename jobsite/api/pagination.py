"""Limit/offset pagination with the bounds of the API contract and a bounded count."""

import json

from django.conf import settings
from django.db import connections
from rest_framework import pagination
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response


def _bounded_int(request, name: str, *, default: int, low: int, high: int | None) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or value < low or (high is not None and value > high):
        bounds = f"from {low} to {high}" if high is not None else f"{low} or more"
        raise ValidationError({name: [f"Must be an integer {bounds}; got {raw!r}."]})
    return value


def estimated_count(queryset) -> int | None:
    """PostgreSQL's planner estimate of the queryset's row count, or None elsewhere."""
    connection = connections[queryset.db]
    if connection.vendor != "postgresql":
        return None
    sql, params = queryset.order_by().query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    plan = json.loads(plan) if isinstance(plan, str) else plan
    return int(plan[0]["Plan"]["Plan Rows"])


def bounded_count(queryset) -> tuple[int, bool]:
    """The queryset's row count, exact up to API_COUNT_EXACT_MAX; past it the planner's estimate where there is one.

    Returns `(count, estimated)`. The exact part reads at most the cap plus one
    row, so a list over millions of rows never pays for a full `COUNT(*)`.
    """
    cap = settings.API_COUNT_EXACT_MAX
    exact = queryset.order_by()[: cap + 1].count()
    if exact <= cap:
        return exact, False
    estimate = estimated_count(queryset)
    if estimate is None:
        return queryset.count(), False
    return max(estimate, exact), True


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
        count, self.count_estimated = bounded_count(queryset)
        return count

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
