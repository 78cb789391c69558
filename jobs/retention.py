"""Retention: deleting expired results and old finished jobs, in batches."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from .models import Job, JobResult


def job_results_purge_expired(*, batch_size: int = 1000, dry_run: bool = False) -> Iterator[int]:
    """Delete expired results and their files in batches, yielding each batch's size.

    With `dry_run`, nothing is deleted and the one yielded count is what would be.
    """
    expired = JobResult.objects.filter(expires_at__lt=timezone.now()).order_by("pk")
    if dry_run:
        yield expired.count()
        return
    while True:
        batch = list(expired[:batch_size])
        if not batch:
            return
        for result in batch:
            if result.result_file:
                result.result_file.delete(save=False)
        deleted, _ = JobResult.objects.filter(pk__in=[r.pk for r in batch]).delete()
        yield deleted


def jobs_purge(
    *, cutoff: datetime, statuses: list[str], batch_size: int = 1000, dry_run: bool = False
) -> Iterator[int]:
    """Delete finished jobs (with stage runs, results and result files) older than `cutoff`, in batches.

    Age is the completion time, or the creation time for a job that never
    completed. Yields each batch's count; with `dry_run`, one count of what
    would go.
    """
    old = (
        Job.objects.filter(status__in=statuses)
        .filter(Q(completed_at__lt=cutoff) | Q(completed_at__isnull=True, created_at__lt=cutoff))
        .order_by("created_at")
    )
    if dry_run:
        yield old.count()
        return
    while True:
        ids = list(old.values_list("pk", flat=True)[:batch_size])
        if not ids:
            return
        for result in JobResult.objects.filter(job_id__in=ids).exclude(result_file=""):
            result.result_file.delete(save=False)
        with transaction.atomic():
            deleted = Job.objects.filter(pk__in=ids).delete()[1].get("jobs.Job", 0)
        yield deleted
