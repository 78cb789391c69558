"""Subscriptions and deliveries in the admin: filters, "redeliver" and "send test" through the services.

Secrets are never shown, not even read-only. Deliveries and their attempts
are history: read-only.
"""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError

from audit.admin_site import ReadOnlyAdminMixin
from audit.context import admin_context

from . import services
from .models import DeliveryStatus, FailedWebhookDelivery, WebhookAttempt, WebhookDelivery, WebhookSubscription

EDITABLE = ["url", "events", "description", "is_active", "all_jobs"]


class SubscriptionForm(forms.ModelForm):
    """The editable fields, checked by the same rules as the API (URL safety, known events)."""

    url = forms.URLField(max_length=2000, assume_scheme="https")

    class Meta:
        model = WebhookSubscription
        fields = EDITABLE

    def clean_url(self):
        try:
            services.webhook_url_check(self.cleaned_data["url"])
        except services.WebhookInputError as exc:
            raise ValidationError(exc.errors["url"]) from None
        return self.cleaned_data["url"]

    def clean_all_jobs(self):
        try:
            services.webhook_all_jobs_check(self.instance.user, self.cleaned_data["all_jobs"])
        except services.WebhookInputError as exc:
            raise ValidationError(exc.errors["all_jobs"]) from None
        return self.cleaned_data["all_jobs"]

    def clean_events(self):
        try:
            return services.webhook_events_check(self.cleaned_data["events"])
        except services.WebhookInputError as exc:
            raise ValidationError(exc.errors["events"]) from None


@admin.register(WebhookSubscription)
class WebhookSubscriptionAdmin(admin.ModelAdmin):
    """Subscriptions are created over the API (the secret is shown once there); here they are changed and tested."""

    form = SubscriptionForm
    list_display = ["url", "user", "event_list", "is_active", "all_jobs", "disabled_reason", "created_at"]
    list_filter = ["is_active", "all_jobs"]
    search_fields = ["=id", "url", "user__username", "description"]
    list_select_related = ["user"]
    show_full_result_count = False
    readonly_fields = [
        "id",
        "user",
        "disabled_reason",
        "failing_since",
        "previous_secret_expires_at",
        "created_at",
        "updated_at",
    ]
    actions = ["send_test"]

    @admin.display(description="Events")
    def event_list(self, obj):
        return ", ".join(obj.events)

    def has_add_permission(self, request):
        return False

    def save_model(self, request, obj, form, change):
        with admin_context(request):
            saved = services.webhook_subscription_update(
                subscription=WebhookSubscription.objects.get(pk=obj.pk),
                **{field: form.cleaned_data[field] for field in EDITABLE},
            )
        obj.disabled_reason, obj.failing_since = saved.disabled_reason, saved.failing_since

    def delete_model(self, request, obj):
        with admin_context(request):
            services.webhook_subscription_delete(subscription=obj)

    def delete_queryset(self, request, queryset):
        with admin_context(request):
            for subscription in queryset:
                services.webhook_subscription_delete(subscription=subscription)

    @admin.action(description="Send a test event", permissions=["change"])
    def send_test(self, request, queryset):
        with admin_context(request):
            for subscription in queryset:
                delivery = services.webhook_subscription_test(subscription=subscription)
                level = messages.SUCCESS if delivery.status == DeliveryStatus.SUCCEEDED else messages.WARNING
                outcome = delivery.last_response_code or delivery.last_error
                self.message_user(request, f"{subscription.url}: {delivery.status} ({outcome})", level)


class WebhookAttemptInline(admin.TabularInline):
    model = WebhookAttempt
    extra = 0
    can_delete = False
    fields = ["number", "started_at", "duration_ms", "outcome", "response_code", "error", "response_excerpt"]
    readonly_fields = fields
    ordering = ["number"]

    def has_add_permission(self, request, obj=None):
        return False


class ReadOnlyDeliveryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "created_at",
        "event_type",
        "status",
        "target",
        "url",
        "attempts",
        "last_response_code",
        "next_attempt_at",
        "delivered_at",
    ]
    list_filter = ["status", "event_type", ("subscription", admin.RelatedOnlyFieldListFilter), "created_at"]
    search_fields = ["=id", "=event_id", "=job__id", "url"]
    date_hierarchy = "created_at"
    show_full_result_count = False
    list_select_related = ["subscription"]
    inlines = [WebhookAttemptInline]
    actions = ["redeliver"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in WebhookDelivery._meta.fields]

    @admin.display(description="Target")
    def target(self, obj):
        return "job callback" if obj.is_callback else "subscription"

    def has_redeliver_permission(self, request):
        return request.user.has_perm("webhooks.redeliver_webhookdelivery")

    @admin.action(description="Redeliver (a new attempt now)", permissions=["redeliver"])
    def redeliver(self, request, queryset):
        done, busy = 0, 0
        with admin_context(request):
            for delivery in queryset:
                try:
                    services.webhook_delivery_redeliver(delivery=delivery)
                    done += 1
                except services.DeliveryBusy:
                    busy += 1
        self.message_user(request, f"{done} delivery(ies) sent again.", messages.SUCCESS)
        if busy:
            self.message_user(request, f"{busy} skipped: an attempt was under way.", messages.WARNING)


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyDeliveryAdmin):
    """Every delivery with its attempts."""


@admin.register(FailedWebhookDelivery)
class FailedWebhookDeliveryAdmin(ReadOnlyDeliveryAdmin):
    """Deliveries retrying or dead."""

    def get_queryset(self, request):
        return super().get_queryset(request).filter(status__in=[DeliveryStatus.FAILED, DeliveryStatus.DEAD])
