from django.db import migrations

from accounts.roles import sync_role_permissions

# Frozen here: later migrations grant further permissions (audit adds the auditor's).
ROLES = {
    "submitter": ["jobs.add_job", "jobs.view_job"],
    "operator": [
        "jobs.add_job",
        "jobs.view_job",
        "jobs.view_all_jobs",
        "jobs.cancel_job",
        "jobs.retry_job",
        "pipelines.view_pipeline",
        "pipelines.add_pipeline",
        "pipelines.change_pipeline",
        "pipelines.delete_pipeline",
    ],
    "auditor": [],
}


def create_roles(apps, schema_editor):
    sync_role_permissions(apps, ROLES)


def remove_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=ROLES).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_apikey"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("jobs", "0002_alter_job_options"),
        ("pipelines", "0001_initial"),
    ]

    operations = [migrations.RunPython(create_roles, remove_roles)]
