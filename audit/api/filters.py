import uuid

import django_filters
from django.db.models import Q

from ..models import AuditLog


class AuditLogFilter(django_filters.FilterSet):
    user = django_filters.CharFilter(method="filter_user", help_text="A user's id (UUID) or username.")
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

    class Meta:
        model = AuditLog
        fields = ["user", "action", "resource_type", "resource_id", "success", "since", "until"]

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
