"""Drop two indexes that another index already serves, each written on the run path for every job.

- `jobs_job.pipeline_id` alone: `job_pipeline_created_idx` starts with the
  same column. Every index of the jobs table costs each job two entries (its
  claim and its completion change indexed columns, so neither is a HOT update).
- `jobs_stagerun.job_id` alone: `stage_run_unique_attempt` (job_id, index,
  attempt) starts with it. Every stage run wrote an entry in both.

Only the indexes go: the foreign keys stay as they are (an AlterField would
drop and re-add them, checking every row under a lock). On PostgreSQL they
are dropped concurrently, so that tables of millions of rows keep taking
writes.
"""

import django.db.models.deletion
from django.db import migrations, models

INDEXES = {"jobs_job_pipeline_id_96a17cec": ("jobs_job", "pipeline_id"), "jobs_stagerun_job_id_7b41f561": ("jobs_stagerun", "job_id")}


def _concurrently(schema_editor) -> str:
    return "CONCURRENTLY " if schema_editor.connection.vendor == "postgresql" else ""


def drop_indexes(apps, schema_editor):
    for name in INDEXES:
        schema_editor.execute(f'DROP INDEX {_concurrently(schema_editor)}IF EXISTS "{name}"')


def create_indexes(apps, schema_editor):
    for name, (table, column) in INDEXES.items():
        schema_editor.execute(f'CREATE INDEX {_concurrently(schema_editor)}IF NOT EXISTS "{name}" ON "{table}" ("{column}")')


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
                    model_name="stagerun",
                    name="job",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="stage_runs",
                        to="jobs.job",
                    ),
                ),
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
            database_operations=[migrations.RunPython(drop_indexes, create_indexes)],
        ),
    ]
