from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin
from rest_framework_api_key.models import APIKey

from audit.context import admin_context

from . import services
from .models import ApiKey, User

# The library's own key model is unused: jobsite's keys belong to users (ApiKey).
admin.site.unregister(APIKey)


@admin.register(User)
class JobsiteUserAdmin(UserAdmin):
    list_display = ("username", "email", "is_staff", "is_active", "date_joined")
    list_filter = ("is_staff", "is_superuser", "is_active", "groups")
    readonly_fields = ("id", "last_login", "date_joined")


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Keys are listed and revoked here; they are created through the API or `create_api_key`."""

    list_display = ["prefix", "name", "user", "scopes", "created", "expiry_date", "last_used_at", "revoked"]
    list_filter = ["revoked", "created"]
    search_fields = ["prefix", "name", "user__username"]
    list_select_related = ["user"]
    fields = ["prefix", "name", "user", "scopes", "created", "expiry_date", "last_used_at", "revoked"]
    readonly_fields = fields
    actions = ["revoke_keys"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def audit_resource_id(self, obj):
        return obj.prefix  # the key's public name; its primary key embeds the hash

    @admin.action(description="Revoke selected API keys", permissions=["revoke"])
    def revoke_keys(self, request, queryset):
        revoked = 0
        with admin_context(request):
            for api_key in queryset.filter(revoked=False):
                services.api_key_revoke(api_key=api_key)
                revoked += 1
        self.message_user(request, f"Revoked {revoked} API key(s).", messages.SUCCESS)

    def has_revoke_permission(self, request):
        return request.user.has_perm("accounts.delete_apikey")
