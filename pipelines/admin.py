from django import forms
from django.contrib import admin

from audit.context import admin_context

from . import services
from .models import Pipeline
from .secrets import config_masked

EDITABLE = ["name", "description", "config", "is_active"]


class PipelineForm(forms.ModelForm):
    class Meta:
        model = Pipeline
        fields = EDITABLE

    def clean_config(self):
        config = self.cleaned_data["config"]
        errors = services.pipeline_config_errors(config, stored=self.instance.config if self.instance.pk else None)
        if errors:
            raise forms.ValidationError([f"{field}: {'; '.join(messages)}" for field, messages in errors.items()])
        return config


@admin.register(Pipeline)
class PipelineAdmin(admin.ModelAdmin):
    """Pipelines are created and changed through the pipelines services (validated, versioned, audited).

    Credential header values show masked; saving the mask back keeps the stored value.
    """

    form = PipelineForm
    list_display = ["name", "version", "is_active", "stage_names", "updated_at"]
    list_filter = ["is_active"]
    search_fields = ["name", "description"]
    readonly_fields = ["version", "created_by", "created_at", "updated_at"]

    @admin.display(description="Stages")
    def stage_names(self, obj):
        return " → ".join(s.get("name", "?") for s in obj.stages)

    def get_object(self, request, object_id, from_field=None):
        # Every page about one pipeline (change, view-only, delete, history) gets it masked;
        # saves go through the services, which read the stored config themselves.
        pipeline = super().get_object(request, object_id, from_field)
        if pipeline is not None:
            pipeline.config = config_masked(pipeline.config)
        return pipeline

    def save_model(self, request, obj, form, change):
        data = {field: form.cleaned_data[field] for field in EDITABLE}
        with admin_context(request):
            if change:
                saved = services.pipeline_update(pipeline=Pipeline.objects.get(pk=obj.pk), **data)
            else:
                saved = services.pipeline_create(created_by=request.user, **data)
        obj.pk, obj.version = saved.pk, saved.version

    def delete_model(self, request, obj):
        with admin_context(request):
            services.pipeline_delete(pipeline=obj)

    def delete_queryset(self, request, queryset):
        with admin_context(request):
            for pipeline in queryset:
                services.pipeline_delete(pipeline=pipeline)
