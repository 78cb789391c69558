from django.contrib import admin

from .models import AuditLog


@admin.register(AuditLog)
class AuditLogAdmin(admin.ModelAdmin):
    """The audit trail: read-only, filterable, searchable."""

    list_display = ["timestamp", "principal", "action", "resource_type", "resource_id", "success", "status_code"]
    list_filter = ["success", "action", "principal_type", "resource_type", "timestamp"]
    search_fields = ["=resource_id", "=request_id", "principal", "user__username"]
    date_hierarchy = "timestamp"
    show_full_result_count = False
    list_select_related = ["user"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in AuditLog._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
