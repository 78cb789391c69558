from django.contrib import admin

from .admin_site import ReadOnlyAdminMixin
from .models import AuditLog


@admin.register(AuditLog)
class AuditLogAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The audit trail: read-only, filterable, searchable."""

    list_display = ["timestamp", "principal", "action", "resource_type", "resource_id", "success", "status_code"]
    list_filter = ["success", "action", "principal_type", "resource_type", "timestamp"]
    search_fields = ["=resource_id", "=request_id", "principal", "user__username"]
    date_hierarchy = "timestamp"
    show_full_result_count = False
    list_select_related = ["user"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in AuditLog._meta.fields]
