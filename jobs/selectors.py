"""Reads of jobs shared by the API, the admin and the commands."""

from django.db.models import QuerySet

from jobsite.api.authentication import is_service

from .models import Job


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
