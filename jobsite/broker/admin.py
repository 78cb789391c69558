from collections import defaultdict

import dramatiq
from django.contrib import admin, messages

from audit.admin_site import ReadOnlyAdminMixin
from audit.context import admin_context

from . import dead_letters
from .backend import DatabaseBroker
from .models import BrokerMessage


@admin.register(BrokerMessage)
class BrokerMessageAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The database broker's messages; shown only while the database broker is the configured one.

    Dead letters of any broker are on the admin's Dead letters page.
    """

    list_display = ["message_id", "queue_name", "actor_name", "state", "available_at", "deliveries", "consumer_id"]
    list_filter = ["queue_name", "state"]
    search_fields = ["=message_id"]
    exclude = ["body"]
    show_full_result_count = False
    actions = ["requeue_dead", "purge_dead"]

    def has_module_permission(self, request):
        return isinstance(dramatiq.get_broker(), DatabaseBroker) and super().has_module_permission(request)

    def has_view_permission(self, request, obj=None):
        return isinstance(dramatiq.get_broker(), DatabaseBroker) and super().has_view_permission(request, obj)

    def has_requeue_permission(self, request):
        return request.user.has_perm("broker.change_brokermessage")

    def has_purge_permission(self, request):
        return request.user.has_perm("broker.delete_brokermessage")

    def _by_queue(self, queryset) -> dict[str, list[str]]:
        ids = defaultdict(list)
        for queue, message_id in queryset.filter(state=BrokerMessage.State.DEAD).values_list(
            "queue_name", "message_id"
        ):
            ids[queue].append(message_id)
        return ids

    @admin.action(description="Requeue the selected dead letters", permissions=["requeue"])
    def requeue_dead(self, request, queryset):
        with admin_context(request):
            count = sum(
                dead_letters.dead_letters_requeue(queue=queue, message_ids=ids)
                for queue, ids in self._by_queue(queryset).items()
            )
        self.message_user(request, f"Requeued {count} dead letter(s).", messages.SUCCESS)

    @admin.action(description="Purge the selected dead letters", permissions=["purge"])
    def purge_dead(self, request, queryset):
        with admin_context(request):
            count = sum(
                dead_letters.dead_letters_purge(queue=queue, message_ids=ids)
                for queue, ids in self._by_queue(queryset).items()
            )
        self.message_user(request, f"Purged {count} dead letter(s).", messages.SUCCESS)
