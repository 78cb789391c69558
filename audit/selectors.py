"""Reads of the audit log."""

from django.db.models import QuerySet

from .models import AuditLog


def audit_log_list() -> QuerySet[AuditLog]:
    """Every audit row, newest first."""
    return AuditLog.objects.select_related("user").order_by("-timestamp", "-id")
