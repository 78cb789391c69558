"""Input and output shapes of the webhooks API."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from jobsite.api.validation import validate_storable

from ..models import SUBSCRIBABLE_EVENTS, WebhookAttempt, WebhookDelivery, WebhookSubscription
from .schema import WebhookPayloadSerializer


class SubscriptionWriteSerializer(serializers.Serializer):
    """Body of `POST /api/v1/webhooks/` and `PATCH /api/v1/webhooks/{id}/`."""

    url = serializers.URLField(max_length=2000, help_text="http(s), no credentials, a public address.")
    events = serializers.ListField(
        child=serializers.CharField(max_length=64),
        max_length=len(SUBSCRIBABLE_EVENTS),
        help_text=f"Event types to receive: {', '.join(SUBSCRIBABLE_EVENTS)}.",
    )
    description = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")
    secret = serializers.CharField(
        max_length=255,
        required=False,
        allow_blank=True,
        write_only=True,
        help_text="`whsec_` + base64 of 24 to 64 bytes; generated when omitted. Shown once, never returned again.",
    )
    is_active = serializers.BooleanField(required=False, default=True)
    all_jobs = serializers.BooleanField(
        required=False, default=False, help_text="Every job's events, not only yours (operators and the service)."
    )

    def validate_url(self, value):
        validate_storable(value)
        return value

    def validate_description(self, value):
        validate_storable(value)
        return value

    def validate_secret(self, value):
        validate_storable(value)
        return value


class SubscriptionUpdateSerializer(SubscriptionWriteSerializer):
    """A PATCH: any of url, events, description, is_active, all_jobs (re-enable with `is_active: true`)."""

    secret = None  # rotated with POST .../rotate-secret/

    def get_fields(self):
        fields = super().get_fields()
        for field in fields.values():
            field.required = False
            field.default = serializers.empty
        return fields


class SubscriptionSerializer(serializers.ModelSerializer):
    """A subscription, without its secret."""

    user_id = serializers.UUIDField(read_only=True, allow_null=True, help_text="The owner; null for the service's.")
    previous_secret_valid_until = serializers.DateTimeField(
        source="previous_secret_expires_at",
        read_only=True,
        allow_null=True,
        help_text="After a rotation, deliveries are signed with the previous secret too until then.",
    )

    class Meta:
        model = WebhookSubscription
        fields = [
            "id",
            "user_id",
            "url",
            "events",
            "description",
            "is_active",
            "all_jobs",
            "disabled_reason",
            "previous_secret_valid_until",
            "created_at",
            "updated_at",
        ]


class SubscriptionCreatedSerializer(SubscriptionSerializer):
    """The answer to a creation: the subscription and its secret, shown this once."""

    secret = serializers.CharField(help_text="The signing secret (`whsec_...`): shown this once, store it now.")

    class Meta(SubscriptionSerializer.Meta):
        fields = [*SubscriptionSerializer.Meta.fields, "secret"]


class RotatedSecretSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    secret = serializers.CharField(help_text="The new signing secret: shown this once.")
    previous_secret_valid_until = serializers.DateTimeField()


class AttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookAttempt
        fields = [
            "number",
            "started_at",
            "duration_ms",
            "url",
            "succeeded",
            "outcome",
            "response_code",
            "error",
            "response_excerpt",
        ]


class DeliverySerializer(serializers.ModelSerializer):
    """A delivery with every attempt made so far."""

    subscription_id = serializers.UUIDField(read_only=True, allow_null=True, help_text="Null: the job's callback.")
    job_id = serializers.UUIDField(read_only=True, allow_null=True)
    target = serializers.SerializerMethodField()
    payload = serializers.SerializerMethodField(help_text="The body every attempt sends (the same each time).")
    attempt_log = AttemptSerializer(many=True, read_only=True)

    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "subscription_id",
            "job_id",
            "target",
            "event_id",
            "event_type",
            "event_at",
            "url",
            "status",
            "attempts",
            "max_attempts",
            "next_attempt_at",
            "last_response_code",
            "last_error",
            "response_excerpt",
            "duration_ms",
            "created_at",
            "delivered_at",
            "payload",
            "attempt_log",
        ]

    @extend_schema_field(serializers.ChoiceField(choices=["subscription", "job_callback"]))
    def get_target(self, delivery) -> str:
        return "job_callback" if delivery.is_callback else "subscription"

    @extend_schema_field(WebhookPayloadSerializer)
    def get_payload(self, delivery) -> dict:
        return delivery.payload


class DeliveryPageSerializer(serializers.Serializer):
    """A page of deliveries, as every list answers."""

    count = serializers.IntegerField()
    count_estimated = serializers.BooleanField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = DeliverySerializer(many=True)
