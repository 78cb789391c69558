from rest_framework import serializers

from ..models import ApiKey
from ..scopes import SCOPES


class ApiKeyCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=50)
    scopes = serializers.ListField(
        child=serializers.ChoiceField(choices=SCOPES), required=False, default=list, max_length=len(SCOPES)
    )
    permissions = serializers.ListField(
        child=serializers.ChoiceField(choices=SCOPES),
        required=False,
        write_only=True,
        max_length=len(SCOPES),
        help_text="The same as `scopes` (the production job system's name for them).",
    )
    expires_at = serializers.DateTimeField(required=False, allow_null=True)

    def validate(self, attrs):
        permissions = attrs.pop("permissions", None)
        if permissions is not None:
            if attrs["scopes"] and sorted(attrs["scopes"]) != sorted(permissions):
                raise serializers.ValidationError({"permissions": ["Differs from scopes; send one of them."]})
            attrs["scopes"] = permissions
        return attrs


class ApiKeySerializer(serializers.ModelSerializer):
    """An API key as listed: never the key itself nor its hash."""

    id = serializers.CharField(source="prefix", help_text="The key's public prefix; use it to revoke the key.")
    expires_at = serializers.DateTimeField(source="expiry_date", allow_null=True)
    created_at = serializers.DateTimeField(source="created")

    class Meta:
        model = ApiKey
        fields = ["id", "name", "prefix", "scopes", "created_at", "expires_at", "last_used_at", "revoked"]


class ApiKeyCreatedSerializer(ApiKeySerializer):
    """The response to creating a key: the only time `key` is shown."""

    key = serializers.CharField(help_text="The full key. It is shown once and cannot be recovered.")

    class Meta(ApiKeySerializer.Meta):
        fields = ["id", "name", "prefix", "key", "scopes", "expires_at", "created_at"]
