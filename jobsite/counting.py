"""Row counts that stay cheap on big tables: exact up to a cap, the planner's estimate past it.

Kept apart from the API's pagination so that workers (the dashboard's snapshot
task) count without loading Django REST framework.
"""

import json

from django.conf import settings
from django.db import connections


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
