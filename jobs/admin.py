from urllib.parse import urlencode

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from .models import Job, JobResult, StageRun


class StageRunInline(admin.TabularInline):
    model = StageRun
    extra = 0
    can_delete = False
    fields = ["index", "name", "stage_type", "status", "attempt", "started_at", "finished_at", "duration_ms", "error"]
    readonly_fields = fields
    ordering = ["index", "attempt"]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "pipeline",
        "status",
        "priority",
        "username",
        "attempts",
        "progress",
        "created_at",
        "duration_ms",
    ]
    list_filter = ["status", "pipeline", "created_at"]
    search_fields = ["id", "username", "action", "idempotency_key", "user_id"]
    list_select_related = ["pipeline"]
    date_hierarchy = "created_at"
    show_full_result_count = False
    # The webhook secret is never shown, not even read-only.
    exclude = ["webhook_secret"]
    readonly_fields = ["audit_trail", *(f.name for f in Job._meta.fields if f.name != "webhook_secret")]
    inlines = [StageRunInline]

    @admin.display(description="Audit trail")
    def audit_trail(self, obj):
        url = (
            reverse("admin:audit_auditlog_changelist")
            + "?"
            + urlencode({"resource_type": "job", "resource_id": obj.pk})
        )
        return format_html('<a href="{}">Every recorded operation on this job</a>', url)

    def has_add_permission(self, request):
        return False


@admin.register(StageRun)
class StageRunAdmin(admin.ModelAdmin):
    list_display = ["job", "name", "stage_type", "status", "attempt", "started_at", "duration_ms"]
    list_filter = ["status", "stage_type"]
    search_fields = ["job__id", "name"]
    list_select_related = ["job"]
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(JobResult)
class JobResultAdmin(admin.ModelAdmin):
    list_display = ["job", "size_bytes", "content_type", "processing_time_ms", "created_at", "expires_at"]
    list_filter = ["content_type", "created_at"]
    search_fields = ["job__id"]
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
