from django.db import migrations

from accounts.roles import ROLE_PERMISSIONS, sync_role_permissions


def create_roles(apps, schema_editor):
    sync_role_permissions(apps, ROLE_PERMISSIONS)


def remove_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=ROLE_PERMISSIONS).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_apikey"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("jobs", "0002_alter_job_options"),
        ("pipelines", "0001_initial"),
    ]

    operations = [migrations.RunPython(create_roles, remove_roles)]
