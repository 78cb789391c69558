"""Dramatiq entry points for jobs: thin, they call services."""

import dramatiq
from django.conf import settings

from . import services


@dramatiq.actor(
    actor_name="jobs_run",
    queue_name="jobs",
    max_retries=0,
    time_limit=settings.JOB_TIME_LIMIT_SECONDS * 1000,
)
def jobs_run(job_id: str) -> None:
    """Run one job; a duplicate or stale message finds nothing to claim and does nothing."""
    services.job_run(job_id=job_id)
