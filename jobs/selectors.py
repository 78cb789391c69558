"""Reads of jobs shared by the API, the admin and the commands."""

from datetime import timedelta

from django.conf import settings
from django.db.models import Count, QuerySet
from django.utils import timezone

from jobsite.api.authentication import is_service

from .models import Job, JobEvent, JobStatus, WorkerProcess


def can_see_all_jobs(user) -> bool:
    """The service principal and holders of `jobs.view_all_jobs` (operators) see every job."""
    return is_service(user) or user.has_perm("jobs.view_all_jobs")


def job_list(*, user) -> QuerySet[Job]:
    """Jobs visible to `user`, newest first, with their pipeline joined."""
    jobs = Job.objects.select_related("pipeline").order_by("-created_at", "-id")
    if can_see_all_jobs(user):
        return jobs
    return jobs.filter(user_id=user.pk)


def job_detail(*, user) -> QuerySet[Job]:
    """Like :func:`job_list`, with stage runs and the result row prefetched."""
    return job_list(user=user).select_related("result").prefetch_related("stage_runs")


def job_list_own(*, user) -> QuerySet[Job]:
    """Only the jobs filed under `user`, even for a caller who may see every job (the starter API's scope)."""
    return job_list(user=user).filter(user_id=user.pk)


def job_detail_own(*, user) -> QuerySet[Job]:
    """Like :func:`job_list_own`, with the result row joined."""
    return job_list_own(user=user).select_related("result")


def job_counts_by_status() -> dict[str, int]:
    """Every status with its number of jobs (zeros included)."""
    counts = dict(Job.objects.order_by().values_list("status").annotate(n=Count("id")))
    return {status: counts.get(status, 0) for status in JobStatus.values}


def oldest_waiting_job() -> Job | None:
    """The job that has waited longest to start (pending or queued)."""
    return (
        Job.objects.filter(status__in=[JobStatus.PENDING, JobStatus.QUEUED])
        .order_by("created_at")
        .only("id", "status", "created_at", "queued_at")
        .first()
    )


def live_workers(*, now=None) -> QuerySet[WorkerProcess]:
    """Worker processes that beat within WORKER_DEAD_AFTER_SECONDS and have not stopped."""
    now = now or timezone.now()
    return WorkerProcess.objects.filter(
        stopped_at__isnull=True, last_seen_at__gte=now - timedelta(seconds=settings.WORKER_DEAD_AFTER_SECONDS)
    ).order_by("worker_id")


def jobs_finished_since(since) -> int:
    """How many jobs completed or failed since `since`."""
    return Job.objects.filter(status__in=[JobStatus.COMPLETED, JobStatus.FAILED], completed_at__gte=since).count()


def outbox_backlog(*, now=None) -> dict[str, int]:
    """Outbox rows waiting past their grace: jobs the broker never got, and events not yet dispatched.

    `pending_jobs`: pending longer than JOB_OUTBOX_RESEND_SECONDS (recovery re-sends
    them); `undispatched_events`: events someone listens to, not handed to the
    webhooks dispatcher JOB_EVENT_DISPATCH_GRACE_SECONDS after they were written.
    Both counts use partial or status indexes.
    """
    now = now or timezone.now()
    jobs_since = now - timedelta(seconds=settings.JOB_OUTBOX_RESEND_SECONDS)
    events_since = now - timedelta(seconds=settings.JOB_EVENT_DISPATCH_GRACE_SECONDS)
    return {
        "pending_jobs": Job.objects.filter(status=JobStatus.PENDING, updated_at__lt=jobs_since).count(),
        "undispatched_events": JobEvent.objects.filter(
            notify=True, dispatched_at__isnull=True, created_at__lt=events_since
        ).count(),
    }
