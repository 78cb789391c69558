"""Dramatiq entry points for jobs: thin, they call services."""

import dramatiq
from django.conf import settings
from django.db import DatabaseError
from dramatiq_crontab import interval

from audit.context import AuditContext, audit_context

from . import recovery, services


def _database_unavailable(retries: int, exception: Exception) -> bool:
    """Redeliver a message whose run hit a database error (say, during a restart).

    Before the claim, the job is still `queued` and needs this message; after
    it, the redelivery finds nothing to claim and the heartbeat hands the job
    back. Any other error is the job's own and is recorded on the job.
    """
    return isinstance(exception, DatabaseError) and retries < 20


@dramatiq.actor(
    actor_name="jobs_run",
    queue_name="jobs",
    retry_when=_database_unavailable,
    min_backoff=1000,
    max_backoff=30_000,
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
