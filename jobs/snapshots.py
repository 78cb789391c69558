"""The dashboard's slowest aggregates, kept in one row by a periodic worker task.

The 7-day statistics (`jobs.stats.job_stats`, as `/api/v1/jobs/stats/?window=7d`
gives them), the completed/failed counts of the closed days of the 30-day
history and the failure groups of the last 7 and 30 days read tens to hundreds
of thousands of rows at a million jobs. The
scheduler (`manage.py crontab`) has a worker recompute them every
REFRESH_SECONDS and store them in `DashboardSnapshot`; the dashboard reads that
row. Without a scheduler, or when the row is older than MAX_AGE or from another
day, the page recomputes them itself (and stores them for the next one).
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timedelta

import dramatiq
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from dramatiq_crontab import interval

from . import dashboard
from .models import DashboardSnapshot, Job
from .stats import job_stats

KEY = "dashboard"
REFRESH_SECONDS = 60
MAX_AGE = timedelta(minutes=5)
# Failure triage over these periods reads tens of thousands of failed jobs: kept here too.
STORED_FAILURE_PERIODS = ("7d", "30d")


def dashboard_snapshot_refresh(*, now: datetime | None = None) -> dict:
    """Recompute the slow aggregates and store them; return them as :func:`dashboard_snapshot` does."""
    now = now or timezone.now()
    data = {
        "today": dashboard.day_start(now).isoformat(),
        "stats_7d": job_stats(jobs=Job.objects.all(), window="7d", now=now),
        "closed_days": [{**day, "at": day["at"].isoformat()} for day in dashboard.closed_days(now=now)],
    }
    DashboardSnapshot.objects.update_or_create(key=KEY, defaults={"data": data, "computed_at": now})
    return _loaded(data)


def dashboard_snapshot(*, now: datetime | None = None) -> tuple[dict, datetime]:
    """`(aggregates, computed_at)`: the stored ones while fresh and of today, else recomputed now.

    `aggregates` has `stats_7d` and `closed_days` (the history's buckets before today).
    """
    now = now or timezone.now()
    row = DashboardSnapshot.objects.filter(key=KEY).first()
    if row is None or row.computed_at < now - MAX_AGE or row.data.get("today") != dashboard.day_start(now).isoformat():
        return dashboard_snapshot_refresh(now=now), now
    return _loaded(row.data), row.computed_at


def _loaded(data: dict) -> dict:
    return {
        "stats_7d": data["stats_7d"],
        "closed_days": [{**day, "at": parse_datetime(day["at"])} for day in data["closed_days"]],
    }


def failure_groups_refresh(*, period: str, now: datetime | None = None) -> list[dashboard.FailureGroup]:
    """Regroup the failed jobs created in `period` (one of STORED_FAILURE_PERIODS) and store the groups."""
    now = now or timezone.now()
    groups = dashboard.failure_groups(since=dashboard.period_start(period))
    stored = [
        {**asdict(g), "first_seen": g.first_seen.isoformat(), "last_seen": g.last_seen.isoformat()} for g in groups
    ]
    DashboardSnapshot.objects.update_or_create(
        key=f"failures:{period}", defaults={"data": {"groups": stored}, "computed_at": now}
    )
    return groups


def stored_failure_groups(*, period: str, now: datetime | None = None) -> tuple[list[dashboard.FailureGroup], datetime]:
    """`(groups, computed_at)` for `period`: the stored groups while fresh, else regrouped now."""
    now = now or timezone.now()
    row = DashboardSnapshot.objects.filter(key=f"failures:{period}").first()
    if row is None or row.computed_at < now - MAX_AGE:
        return failure_groups_refresh(period=period, now=now), now
    groups = [
        dashboard.FailureGroup(
            **{**g, "first_seen": parse_datetime(g["first_seen"]), "last_seen": parse_datetime(g["last_seen"])}
        )
        for g in row.data["groups"]
    ]
    return groups, row.computed_at


@interval(seconds=REFRESH_SECONDS)
@dramatiq.actor(actor_name="jobs_dashboard_snapshot", queue_name="maintenance", max_retries=0, max_age=60_000)
def jobs_dashboard_snapshot() -> None:
    """Keep the dashboard's and failure triage's stored aggregates fresh (scheduled by `manage.py crontab`)."""
    now = timezone.now()
    dashboard_snapshot_refresh(now=now)
    for period in STORED_FAILURE_PERIODS:
        failure_groups_refresh(period=period, now=now)
