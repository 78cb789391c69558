from rest_framework import serializers

from ..models import AuditLog


class AuditLogSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditLog
        fields = [
            "id",
            "timestamp",
            "user",
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
