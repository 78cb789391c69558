"""Dramatiq entry points for jobs: thin, they call services."""

import dramatiq
from django.conf import settings
from django.db import DatabaseError
from dramatiq_crontab import interval

from audit.context import AuditContext, audit_context

from . import recovery, run


def _database_unavailable(retries: int, exception: Exception) -> bool:
    """Redeliver a message whose run hit a database error (say, during a restart).

    Before the claim, the job is still `queued` and needs this message; after
    it, the redelivery finds nothing to claim and the heartbeat hands the job
    back. Any other error is the job's own and is recorded on the job.
    """
    return isinstance(exception, DatabaseError) and retries < 20


def _job_actor(queue_name: str, priority: int):
    """The actor running the jobs of one priority band.

    A worker takes work from its queues in the actors' `priority` order
    (lower first), so under a backlog a higher band's job starts first.
    """

    def run_job(job_id: str) -> None:
        """Run one job; a duplicate or stale message finds nothing to claim and does nothing."""
        run.job_run(job_id=job_id)

    actor_name = "jobs_run" if queue_name == "jobs" else f"jobs_run_{queue_name.split('.')[-1]}"
    run_job.__name__ = actor_name
    return dramatiq.actor(
        run_job,
        actor_name=actor_name,
        queue_name=queue_name,
        priority=priority,
        retry_when=_database_unavailable,
        min_backoff=1000,
        max_backoff=30_000,
        time_limit=settings.JOB_TIME_LIMIT_SECONDS * 1000,
    )


jobs_run_urgent = _job_actor("jobs.urgent", priority=10)
jobs_run_high = _job_actor("jobs.high", priority=20)
jobs_run = _job_actor("jobs", priority=30)

# The actor of each priority band's queue (see jobs.services.band_queue).
BAND_ACTORS = {actor.queue_name: actor for actor in (jobs_run_urgent, jobs_run_high, jobs_run)}


@interval(seconds=settings.JOB_RECOVERY_INTERVAL_SECONDS)
@dramatiq.actor(actor_name="jobs_recover", queue_name="maintenance", max_retries=0, max_age=60_000)
def jobs_recover() -> None:
    """Periodic recovery and maintenance (scheduled by `manage.py crontab`); see jobs.recovery."""
    with audit_context(AuditContext(source="system", name="recovery")):
        recovery.jobs_recover()
