"""Dramatiq entry points for jobs: thin, they call services."""

import dramatiq
from django.conf import settings
from dramatiq_crontab import interval

from audit.context import AuditContext, audit_context

from . import recovery, services


@dramatiq.actor(
    actor_name="jobs_run",
    queue_name="jobs",
    max_retries=0,
    time_limit=settings.JOB_TIME_LIMIT_SECONDS * 1000,
)
def jobs_run(job_id: str) -> None:
    """Run one job; a duplicate or stale message finds nothing to claim and does nothing."""
    services.job_run(job_id=job_id)


@interval(seconds=settings.JOB_RECOVERY_INTERVAL_SECONDS)
@dramatiq.actor(actor_name="jobs_recover", queue_name="maintenance", max_retries=0, max_age=60_000)
def jobs_recover() -> None:
    """Periodic recovery (scheduled by `manage.py crontab`); see jobs.recovery."""
    with audit_context(AuditContext(source="system", name="recovery")):
        recovery.jobs_recover()
