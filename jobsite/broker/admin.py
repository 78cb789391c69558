from django.contrib import admin

from .models import BrokerMessage


@admin.register(BrokerMessage)
class BrokerMessageAdmin(admin.ModelAdmin):
    list_display = ["message_id", "queue_name", "actor_name", "state", "available_at", "deliveries", "consumer_id"]
    list_filter = ["queue_name", "state"]
    search_fields = ["message_id"]
    exclude = ["body"]
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
