"""Drop the jobs table's index on `pipeline_id` alone: `job_pipeline_created_idx` starts with the same column.

Every index costs each job two entries on the run path (its claim and its
completion change indexed columns, so neither is a HOT update). Only the index
goes: the foreign key stays as it is (an AlterField would drop and re-add it,
checking every row under a lock). On PostgreSQL it is dropped concurrently, so
that a table of millions of jobs keeps taking writes.
"""

import django.db.models.deletion
from django.db import migrations, models

INDEX = "jobs_job_pipeline_id_96a17cec"


def drop_index(apps, schema_editor):
    concurrently = "CONCURRENTLY " if schema_editor.connection.vendor == "postgresql" else ""
    schema_editor.execute(f'DROP INDEX {concurrently}IF EXISTS "{INDEX}"')


def create_index(apps, schema_editor):
    concurrently = "CONCURRENTLY " if schema_editor.connection.vendor == "postgresql" else ""
    schema_editor.execute(f'CREATE INDEX {concurrently}IF NOT EXISTS "{INDEX}" ON "jobs_job" ("pipeline_id")')


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("jobs", "0008_admin_indexes"),
        ("pipelines", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="job",
                    name="pipeline",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="jobs",
                        to="pipelines.pipeline",
                    ),
                ),
            ],
            database_operations=[migrations.RunPython(drop_index, create_index)],
        ),
    ]
