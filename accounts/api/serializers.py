from django.contrib.auth import get_user_model
from rest_framework import serializers
from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt.serializers import TokenRefreshSerializer
from rest_framework_simplejwt.settings import api_settings as jwt_settings
from rest_framework_simplejwt.utils import get_md5_hash_password

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


class RefreshSerializer(TokenRefreshSerializer):
    """Refresh a token pair, refusing a refresh token its user no longer honours.

    simplejwt checks the password claim (`REVOKE_TOKEN_CLAIM`) on access tokens
    only; here a refresh token minted before the password last changed, or
    whose user is gone or inactive, is refused too (401).
    """

    default_error_messages = {"token_revoked": "The refresh token is no longer valid; log in again."}

    def validate(self, attrs):
        refresh = self.token_class(attrs["refresh"])
        user = (
            get_user_model()
            .objects.filter(**{jwt_settings.USER_ID_FIELD: refresh.payload.get(jwt_settings.USER_ID_CLAIM)})
            .first()
        )
        revoked = user is None or not jwt_settings.USER_AUTHENTICATION_RULE(user)
        if not revoked and jwt_settings.CHECK_REVOKE_TOKEN:
            revoked = refresh.payload.get(jwt_settings.REVOKE_TOKEN_CLAIM) != get_md5_hash_password(user.password)
        if revoked:
            raise AuthenticationFailed(self.error_messages["token_revoked"], "token_revoked")
        return super().validate(attrs)
