"""The job list's filters, shared by the API and the selector."""

from datetime import datetime, time, timedelta

import django_filters
from django.db.models import Q, QuerySet
from django.utils import timezone
from rest_framework.exceptions import ValidationError

from .models import STATUS_GROUPS, JobStatus

STATUS_VALUES = [*STATUS_GROUPS, *(s for s in JobStatus.values if s not in STATUS_GROUPS)]
LIMIT_RESULTS_MAX = 500
LIMIT_RESULTS_PERIODS = {"Today": None, "7 Days": timedelta(days=7), "30 Days": timedelta(days=30)}
# As the LLM workflow service listed them in its InvalidLimitResults error.
LIMIT_RESULTS_VALID_VALUES = [f"1-{LIMIT_RESULTS_MAX}", *LIMIT_RESULTS_PERIODS]
ORDERINGS = ["created_at", "-created_at", "priority", "-priority", "duration_ms", "-duration_ms"]


def _invalid(param: str, value: str, valid: list[str]) -> ValidationError:
    return ValidationError(
        {param: [f"Invalid value {value!r}. Valid values: {', '.join(valid)}."], "valid_values": valid}
    )


def parse_statuses(value: str, param: str = "status") -> set[str]:
    """Expand `running,failed`-style values into exact statuses; a 400 naming `param` on anything unknown."""
    statuses: set[str] = set()
    for part in (p.strip() for p in value.split(",")):
        if part in STATUS_GROUPS:
            statuses.update(STATUS_GROUPS[part])
        elif part in JobStatus.values:
            statuses.add(part)
        else:
            raise _invalid(param, part, STATUS_VALUES)
    return statuses


def parse_limit_results(value: str) -> int | datetime:
    """A number of results (1..500), or the start of a period (`Today` is since 00:00 UTC)."""
    if value in LIMIT_RESULTS_PERIODS:
        now = timezone.now()
        period = LIMIT_RESULTS_PERIODS[value]
        return datetime.combine(now.date(), time.min, tzinfo=now.tzinfo) if period is None else now - period
    if value.isascii() and value.isdigit() and 1 <= int(value) <= LIMIT_RESULTS_MAX:
        return int(value)
    raise _invalid("limit_results", value, LIMIT_RESULTS_VALID_VALUES)


def filter_statuses(queryset: QuerySet, statuses: set[str]) -> QuerySet:
    """Narrow `queryset` to jobs in `statuses` (no narrowing when they cover every status)."""
    if statuses >= set(JobStatus.values):
        return queryset
    return queryset.filter(status__in=sorted(statuses))


class JobFilter(django_filters.FilterSet):
    status = django_filters.CharFilter(
        method="filter_status",
        help_text=f"A status group or an exact status, several comma-separated: {', '.join(STATUS_VALUES)}.",
    )
    status_filter = django_filters.CharFilter(
        method="filter_status", help_text="The same as `status` (the LLM workflow service's argument name)."
    )
    user_id = django_filters.UUIDFilter(help_text="Only jobs filed under this user (your own unless privileged).")
    pipeline = django_filters.CharFilter(field_name="pipeline__name", help_text="Exact pipeline name.")
    username = django_filters.CharFilter()
    action = django_filters.CharFilter()
    search = django_filters.CharFilter(
        method="filter_search", help_text="Case-insensitive match in username or action."
    )
    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")
    limit_results = django_filters.CharFilter(
        method="filter_limit_results",
        strip=False,  # exactly as sent: " 5" is not a number of results (the paginator reads it unstripped too)
        help_text="1..500 results (overrides `limit`), or `Today` (since 00:00 UTC), `7 Days`, `30 Days`.",
    )
    ordering = django_filters.ChoiceFilter(
        choices=[(o, o) for o in ORDERINGS], method="filter_ordering", help_text="Default `-created_at`."
    )

    def filter_status(self, queryset: QuerySet, name, value):
        return filter_statuses(queryset, parse_statuses(value, param=name))

    def filter_search(self, queryset, name, value):
        return queryset.filter(Q(username__icontains=value) | Q(action__icontains=value))

    def filter_limit_results(self, queryset, name, value):
        limit = parse_limit_results(value)
        return queryset if isinstance(limit, int) else queryset.filter(created_at__gte=limit)

    def filter_ordering(self, queryset, name, value):
        tie_breaker = "-id" if value.startswith("-") else "id"
        return queryset.order_by(value, tie_breaker)
