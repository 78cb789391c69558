from django.db import migrations

from accounts.roles import sync_role_permissions

# Frozen here: a submitter may cancel and retry its own jobs (the API scopes job lookups to the caller).
ROLES = {"submitter": ["jobs.cancel_job", "jobs.retry_job"]}


def grant(apps, schema_editor):
    sync_role_permissions(apps, ROLES)


def revoke(apps, schema_editor):
    group = apps.get_model("auth", "Group").objects.filter(name="submitter").first()
    if group:
        group.permissions.remove(
            *apps.get_model("auth", "Permission").objects.filter(
                content_type__app_label="jobs", codename__in=["cancel_job", "retry_job"]
            )
        )


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0003_roles"),
        ("jobs", "0007_job_events_and_submission_facts"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
