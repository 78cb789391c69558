"""The audit log: one append-only row per operation."""

from django.conf import settings
from django.db import models


class AuditLogQuerySet(models.QuerySet):
    """Rows are never changed or deleted, except by the retention purge."""

    def update(self, **kwargs):
        raise PermissionError("The audit log is append-only.")

    def delete(self):
        raise PermissionError("The audit log is append-only; use cleanup_audit for retention.")

    def _purge(self) -> int:
        """Delete these rows: only for `audit_purge_older_than`."""
        return super().delete()[0]

    def _complete_response(self, **kwargs) -> int:
        """Fill in the response facts of rows written during a request (status code, duration)."""
        return super().update(**kwargs)


class AuditLog(models.Model):
    """Who did what, to which resource, through which request, and how it ended."""

    class PrincipalType(models.TextChoices):
        USER = "user", "User"
        API_KEY = "api_key", "API key"
        SERVICE = "service", "Service secret"
        ANONYMOUS = "anonymous", "Anonymous"
        SYSTEM = "system", "System (command or worker)"

    id = models.BigAutoField(primary_key=True)
    timestamp = models.DateTimeField(auto_now_add=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_constraint=False,
    )
    principal = models.CharField(max_length=255, help_text="Username, `key:<prefix>`, `service`, or a command.")
    principal_type = models.CharField(max_length=16, choices=PrincipalType.choices)
    action = models.CharField(max_length=100, help_text="Dotted, e.g. jobs.job.create or admin.api_key.revoke.")
    resource_type = models.CharField(max_length=50, blank=True, default="")
    resource_id = models.CharField(max_length=100, blank=True, default="")
    request_details = models.JSONField(default=dict, blank=True)
    success = models.BooleanField(default=True)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error_message = models.TextField(blank=True, default="")
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True, default="")
    request_id = models.CharField(max_length=128, blank=True, default="")
    duration_ms = models.PositiveIntegerField(null=True, blank=True)

    objects = AuditLogQuerySet.as_manager()

    class Meta:
        ordering = ["-timestamp", "-id"]
        indexes = [
            models.Index(fields=["-timestamp", "-id"], name="audit_time_idx"),
            models.Index(fields=["action", "-timestamp"], name="audit_action_time_idx"),
            models.Index(fields=["resource_type", "resource_id"], name="audit_resource_idx"),
            models.Index(fields=["user", "-timestamp"], name="audit_user_time_idx"),
            models.Index(fields=["principal", "-timestamp"], name="audit_principal_time_idx"),
            models.Index(fields=["request_id"], name="audit_request_idx"),
        ]

    def __str__(self):
        return f"{self.timestamp:%Y-%m-%d %H:%M:%S} {self.principal} {self.action} {self.resource_id}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise PermissionError("The audit log is append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError("The audit log is append-only; use cleanup_audit for retention.")
