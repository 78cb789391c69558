from rest_framework import serializers

from ..models import AuditLog


class AuditLogSerializer(serializers.ModelSerializer):
    user_id = serializers.UUIDField(read_only=True, allow_null=True, help_text="The same as `user` (seed 002's name).")

    class Meta:
        model = AuditLog
        fields = [
            "id",
            "timestamp",
            "user",
            "user_id",
            "principal",
            "principal_type",
            "action",
            "resource_type",
            "resource_id",
            "request_details",
            "success",
            "status_code",
            "error_message",
            "ip_address",
            "user_agent",
            "request_id",
            "duration_ms",
        ]
