"""The admin site: every delete made through it leaves an audit row.

Django's admin deletes objects itself (`delete_model`, and `delete_queryset`
for the "Delete selected" action). The site wraps every ModelAdmin registered
on it, the project's and those of Django and libraries alike, in
`AuditedDeleteMixin`, so no admin can forget it.
"""

import re

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig
from django.db import router, transaction

from .context import admin_context

_CAMEL = re.compile(r"([a-z0-9])([A-Z])")


def _entity(model) -> str:
    """The audit log's name for a model: `ApiKey` -> `api_key`."""
    return _CAMEL.sub(r"\1_\2", model._meta.object_name).lower()


class AuditedDeleteMixin:
    """Record each object deleted through a ModelAdmin: `admin.<entity>.delete`, one row per object.

    When the admin deletes through a service that writes its own row (pipelines),
    that row is the record and none is added. The row and the delete commit together.
    An admin names its objects in the log with an `audit_resource_id(obj)` method
    (API keys by prefix); the primary key otherwise.
    """

    def _audit_target(self, obj) -> tuple[str, str]:
        """How the row names `obj`: by the admin's `audit_resource_id(obj)` if it has one, else its primary key."""
        resource_id = getattr(self, "audit_resource_id", None)
        return (resource_id(obj) if resource_id else str(obj.pk)), str(obj)

    def delete_model(self, request, obj):
        with admin_context(request) as context, transaction.atomic(using=router.db_for_write(type(obj))):
            target = self._audit_target(obj)
            written = len(context.written)
            super().delete_model(request, obj)
            if len(context.written) == written:
                _record_deletes(type(obj), [target])

    def delete_queryset(self, request, queryset):
        with admin_context(request) as context, transaction.atomic(using=queryset.db):
            targets = [self._audit_target(obj) for obj in queryset]
            written = len(context.written)
            super().delete_queryset(request, queryset)
            if len(context.written) == written:
                _record_deletes(queryset.model, targets)


def _record_deletes(model, targets: list[tuple[str, str]]) -> None:
    from .services import audit_record

    for resource_id, label in targets:
        audit_record(
            app=model._meta.app_label,
            entity=_entity(model),
            verb="delete",
            resource_id=resource_id,
            details={"object": label},
        )


class ReadOnlyAdminMixin:
    """A ModelAdmin over history that must not be edited (audit rows, deliveries, stage runs, broker rows):
    rows are viewed, never added, changed or deleted through the admin."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class AuditedAdminSite(admin.AdminSite):
    """The default admin site, with every ModelAdmin's deletes audited."""

    def register(self, model_or_iterable, admin_class=None, **options):
        admin_class = admin_class or admin.ModelAdmin
        if not issubclass(admin_class, AuditedDeleteMixin):
            admin_class = type(
                admin_class.__name__,
                (AuditedDeleteMixin, admin_class),
                {"__module__": admin_class.__module__, "__doc__": admin_class.__doc__},
            )
        super().register(model_or_iterable, admin_class, **options)


class AuditedAdminConfig(AdminConfig):
    """`django.contrib.admin` with `AuditedAdminSite` as its default site (listed in INSTALLED_APPS)."""

    default_site = "audit.admin_site.AuditedAdminSite"
