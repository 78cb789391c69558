"""Limit/offset pagination with the bounds of the API contract."""

from rest_framework import pagination


class LimitOffsetPagination(pagination.LimitOffsetPagination):
    """`limit` defaults to 50 and is capped at 200."""

    default_limit = 50
    max_limit = 200
