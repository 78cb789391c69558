from django.contrib import admin

from .models import Pipeline


@admin.register(Pipeline)
class PipelineAdmin(admin.ModelAdmin):
    list_display = ["name", "version", "is_active", "stage_names", "updated_at"]
    list_filter = ["is_active"]
    search_fields = ["name", "description"]
    readonly_fields = ["version", "created_by", "created_at", "updated_at"]

    @admin.display(description="Stages")
    def stage_names(self, obj):
        return " → ".join(s.get("name", "?") for s in obj.stages)
