from django.db import migrations

from accounts.roles import sync_role_permissions

# Frozen here, as granted when the webhooks app arrived.
SUBMITTER = [
    "webhooks.view_webhooksubscription",
    "webhooks.add_webhooksubscription",
    "webhooks.change_webhooksubscription",
    "webhooks.delete_webhooksubscription",
    "webhooks.view_webhookdelivery",
    "webhooks.redeliver_webhookdelivery",
]
ROLES = {"submitter": SUBMITTER, "operator": [*SUBMITTER, "webhooks.manage_all_webhooks"]}


def grant(apps, schema_editor):
    sync_role_permissions(apps, ROLES)


def revoke(apps, schema_editor):
    for role in ROLES:
        group = apps.get_model("auth", "Group").objects.filter(name=role).first()
        if group:
            group.permissions.remove(*group.permissions.filter(content_type__app_label="webhooks"))


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0004_submitters_cancel_and_retry_own_jobs"),
        ("webhooks", "0001_initial"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
