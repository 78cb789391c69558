"""Limit/offset pagination with the bounds of the API contract."""

from rest_framework import pagination
from rest_framework.exceptions import ValidationError


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


class LimitOffsetPagination(pagination.LimitOffsetPagination):
    """`limit` defaults to 50, 1..200; `offset` >= 0; anything else is a 400."""

    default_limit = 50
    max_limit = 200

    def get_limit(self, request):
        return _bounded_int(request, self.limit_query_param, default=self.default_limit, low=1, high=self.max_limit)

    def get_offset(self, request):
        return _bounded_int(request, self.offset_query_param, default=0, low=0, high=None)
