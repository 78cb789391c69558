from django.db import migrations

from accounts.roles import sync_role_permissions


def grant(apps, schema_editor):
    sync_role_permissions(apps, {"auditor": ["audit.view_auditlog"]})


def revoke(apps, schema_editor):
    group = apps.get_model("auth", "Group").objects.filter(name="auditor").first()
    if group:
        group.permissions.remove(*group.permissions.filter(content_type__app_label="audit", codename="view_auditlog"))


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0001_initial"),
        ("accounts", "0003_roles"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
