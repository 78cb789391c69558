"""The dashboard's slowest aggregates, kept in one row by a periodic worker task.

The 7-day statistics (`jobs.stats.job_stats`, as `/api/v1/jobs/stats/?window=7d`
gives them) and the completed/failed counts of the closed days of the 30-day
history read hundreds of thousands of index entries at a million jobs. The
scheduler (`manage.py crontab`) has a worker recompute them every
REFRESH_SECONDS and store them in `DashboardSnapshot`; the dashboard reads that
row. Without a scheduler, or when the row is older than MAX_AGE or from another
day, the page recomputes them itself (and stores them for the next one).
"""

from __future__ import annotations

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


@interval(seconds=REFRESH_SECONDS)
@dramatiq.actor(actor_name="jobs_dashboard_snapshot", queue_name="maintenance", max_retries=0, max_age=60_000)
def jobs_dashboard_snapshot() -> None:
    """Keep the dashboard's stored aggregates fresh (scheduled by `manage.py crontab`)."""
    dashboard_snapshot_refresh()
