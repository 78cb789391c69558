from drf_spectacular.utils import extend_schema
from rest_framework import mixins

from jobsite.api.schema import PRODUCTION_JOB_SYSTEM_TAG
from jobsite.api.views import GenericViewSet

from .. import selectors
from .filters import AuditLogFilter
from .serializers import AuditLogSerializer


@extend_schema(tags=["audit", PRODUCTION_JOB_SYSTEM_TAG])
class AuditLogViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, GenericViewSet):
    """Read the audit log, newest first (needs `audit:read`)."""

    serializer_class = AuditLogSerializer
    filterset_class = AuditLogFilter
    operation_permissions = {"list": "audit.view_auditlog", "retrieve": "audit.view_auditlog"}

    def get_queryset(self):
        return selectors.audit_log_list()
