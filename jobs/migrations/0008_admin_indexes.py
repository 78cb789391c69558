"""The admin dashboard: bulk operations, its stored snapshot, the indexes its pages read through, its permissions.

The indexes are created with `CREATE INDEX CONCURRENTLY` on PostgreSQL, so
that migrating a deployment with millions of jobs does not block writes to the
jobs table (hence `atomic = False`); a failed concurrent build leaves an
INVALID index that `IF NOT EXISTS` would keep, so a rerun drops those first.
They are kept out of the model state (`Job.Meta.indexes`) because they use
PostgreSQL operator classes, `INCLUDE` columns and `NULLS LAST` orders; SQLite
gets the same shapes without them.
"""

import uuid

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

from accounts.roles import sync_role_permissions

# name -> (PostgreSQL definition, SQLite definition)
INDEXES = {
    # Filters of the admin's job list, each followed by the list's order.
    "job_pipeline_created_idx": (
        "jobs_job (pipeline_id, created_at DESC, id DESC)",
        "jobs_job (pipeline_id, created_at DESC, id DESC)",
    ),
    # Equality and prefix search (LIKE 'x%') on username and action, in any collation.
    "job_username_created_idx": (
        "jobs_job (username varchar_pattern_ops, created_at DESC, id DESC)",
        "jobs_job (username, created_at DESC, id DESC)",
    ),
    "job_action_created_idx": (
        "jobs_job (action varchar_pattern_ops, created_at DESC, id DESC)",
        "jobs_job (action, created_at DESC, id DESC)",
    ),
    # The worker filter and the per-worker figures: `locked_by` starts with the worker's id.
    "job_locked_by_idx": (
        "jobs_job (locked_by varchar_pattern_ops, created_at DESC) WHERE locked_by <> ''",
        "jobs_job (locked_by, created_at DESC) WHERE locked_by <> ''",
    ),
    # Throughput per minute and per day, processed counts: finished jobs by completion time.
    "job_completed_idx": (
        "jobs_job (completed_at, status) WHERE completed_at IS NOT NULL",
        "jobs_job (completed_at, status) WHERE completed_at IS NOT NULL",
    ),
    # Per-pipeline statistics over a window (jobs.stats), read from the index alone.
    "job_created_stats_idx": (
        "jobs_job (created_at) INCLUDE (pipeline_id, status, duration_ms, id)",
        "jobs_job (created_at, pipeline_id, status, duration_ms)",
    ),
    # The list's sorts: priority (then newest), duration with the jobs that have none last.
    "job_priority_created_idx": (
        "jobs_job (priority, created_at, id)",
        "jobs_job (priority, created_at, id)",
    ),
    "job_duration_asc_idx": (
        "jobs_job (duration_ms ASC NULLS LAST, id ASC)",
        "jobs_job (duration_ms, id)",
    ),
    "job_duration_desc_idx": (
        "jobs_job (duration_ms DESC NULLS LAST, id DESC)",
        "jobs_job (duration_ms DESC, id DESC)",
    ),
    # "Has an error", newest first.
    "job_error_created_idx": (
        "jobs_job (created_at DESC, id DESC) WHERE error_message <> ''",
        "jobs_job (created_at DESC, id DESC) WHERE error_message <> ''",
    ),
}

OPERATOR_PERMISSIONS = [
    "jobs.delete_job",
    "jobs.view_stagerun",
    "jobs.view_jobresult",
    "jobs.view_workerprocess",
    "jobs.view_bulkoperation",
    "jobs.change_bulkoperation",
    "broker.view_brokermessage",
    "broker.change_brokermessage",
    "broker.delete_brokermessage",
]
AUDITOR_PERMISSIONS = [
    "jobs.view_job",
    "jobs.view_all_jobs",
    "jobs.view_stagerun",
    "jobs.view_jobresult",
    "jobs.view_workerprocess",
    "jobs.view_bulkoperation",
    "broker.view_brokermessage",
]


def create_indexes(apps, schema_editor):
    postgres = schema_editor.connection.vendor == "postgresql"
    for name, (pg_definition, sqlite_definition) in INDEXES.items():
        if postgres:
            schema_editor.execute(
                "DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                f"WHERE c.relname = '{name}' AND NOT i.indisvalid) THEN EXECUTE 'DROP INDEX {name}'; END IF; END $$"
            )
            schema_editor.execute(f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON {pg_definition}")
        else:
            schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {sqlite_definition}")


def drop_indexes(apps, schema_editor):
    concurrently = "CONCURRENTLY " if schema_editor.connection.vendor == "postgresql" else ""
    for name in INDEXES:
        schema_editor.execute(f"DROP INDEX {concurrently}IF EXISTS {name}")


def grant(apps, schema_editor):
    sync_role_permissions(apps, {"operator": OPERATOR_PERMISSIONS, "auditor": AUDITOR_PERMISSIONS})


def revoke(apps, schema_editor):
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    for role, perms in (("operator", OPERATOR_PERMISSIONS), ("auditor", AUDITOR_PERMISSIONS)):
        group = group_model.objects.filter(name=role).first()
        if group is None:
            continue
        for perm in perms:
            app_label, codename = perm.split(".")
            group.permissions.remove(
                *permission_model.objects.filter(content_type__app_label=app_label, codename=codename)
            )


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("jobs", "0007_job_events_and_submission_facts"),
        ("accounts", "0003_roles"),
        ("audit", "0002_auditor_role"),
        ("broker", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="BulkOperation",
            fields=[
                ("id", models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                (
                    "kind",
                    models.CharField(
                        choices=[
                            ("cancel", "Cancel"),
                            ("retry", "Retry (resume)"),
                            ("retry_from_start", "Retry from the start"),
                            ("requeue", "Requeue"),
                            ("delete", "Delete"),
                        ],
                        max_length=32,
                    ),
                ),
                (
                    "criteria",
                    models.JSONField(default=dict, help_text="The filter snapshot the operation works through."),
                ),
                (
                    "description",
                    models.CharField(blank=True, default="", help_text="The filter, in words.", max_length=500),
                ),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("queued", "Queued"),
                            ("running", "Running"),
                            ("completed", "Completed"),
                            ("cancelled", "Stopped"),
                            ("failed", "Failed"),
                        ],
                        default="queued",
                        max_length=16,
                    ),
                ),
                (
                    "total",
                    models.PositiveIntegerField(
                        blank=True, help_text="Jobs the filter matched when it started.", null=True
                    ),
                ),
                ("done", models.PositiveIntegerField(default=0, help_text="Jobs handled so far.")),
                ("succeeded", models.PositiveIntegerField(default=0)),
                (
                    "skipped",
                    models.PositiveIntegerField(default=0, help_text="Jobs whose state no longer allowed the action."),
                ),
                ("failed", models.PositiveIntegerField(default=0)),
                (
                    "summary",
                    models.JSONField(blank=True, default=dict, help_text="Skips by status and the first errors."),
                ),
                ("cursor", models.CharField(blank=True, default="", max_length=64)),
                ("lease_expires_at", models.DateTimeField(blank=True, null=True)),
                ("stop_requested", models.BooleanField(default=False)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("started_at", models.DateTimeField(blank=True, null=True)),
                ("finished_at", models.DateTimeField(blank=True, null=True)),
                (
                    "requested_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={"ordering": ["-created_at"]},
        ),
        migrations.CreateModel(
            name="DashboardSnapshot",
            fields=[
                ("key", models.CharField(max_length=64, primary_key=True, serialize=False)),
                ("data", models.JSONField(default=dict)),
                ("computed_at", models.DateTimeField()),
            ],
        ),
        migrations.RunPython(create_indexes, drop_indexes),
        migrations.RunPython(grant, revoke),
    ]
