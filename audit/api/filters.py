import uuid

import django_filters
from django.db.models import Q

from ..models import AuditLog


class AuditLogFilter(django_filters.FilterSet):
    user = django_filters.CharFilter(method="filter_user", help_text="A user's id (UUID) or username.")
    user_id = django_filters.CharFilter(method="filter_user", help_text="The same as `user` (seed 002's name).")
    action = django_filters.CharFilter(
        method="filter_action", help_text="Exact action, or a prefix ending in `*` (e.g. `jobs.*`)."
    )
    resource_type = django_filters.CharFilter()
    resource_id = django_filters.CharFilter()
    success = django_filters.ChoiceFilter(
        choices=[("true", "true"), ("false", "false")], method="filter_success", help_text="`true` or `false`."
    )
    since = django_filters.IsoDateTimeFilter(field_name="timestamp", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="timestamp", lookup_expr="lt")
    # The production job system's date range (seed 002 named no parameters; these are the usual names).
    start_date = django_filters.IsoDateTimeFilter(
        field_name="timestamp", lookup_expr="gte", help_text="The same as `since`."
    )
    end_date = django_filters.IsoDateTimeFilter(
        field_name="timestamp", lookup_expr="lt", help_text="The same as `until`."
    )

    class Meta:
        model = AuditLog
        fields = [
            "user",
            "user_id",
            "action",
            "resource_type",
            "resource_id",
            "success",
            "since",
            "until",
            "start_date",
            "end_date",
        ]

    def filter_user(self, queryset, name, value):
        try:
            return queryset.filter(user_id=uuid.UUID(value))
        except ValueError:
            return queryset.filter(Q(user__username=value) | Q(principal=value))

    def filter_success(self, queryset, name, value):
        return queryset.filter(success=value == "true")

    def filter_action(self, queryset, name, value):
        if value.endswith("*"):
            return queryset.filter(action__startswith=value[:-1])
        return queryset.filter(action=value)
