"""Job statistics over a time window: counts by status, success rate and processing time, per pipeline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.db.models import Count, F, QuerySet, Sum, Window
from django.db.models.functions import RowNumber
from django.utils import timezone

from .models import Job, JobStatus

WINDOWS = {
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}

# The percentile reported as `p95`, as a whole percent so that the rank is integer arithmetic.
P95_PERCENT = 95


def job_stats(*, jobs: QuerySet[Job], window: str, now: datetime | None = None) -> dict:
    """Summarise the jobs of `jobs` created within `window` before `now`.

    `jobs` is already scoped to what the caller may see; only jobs with
    `since <= created_at <= until` count. Processing times are the `duration_ms`
    of completed jobs (those without one are left out); `avg` is their mean,
    rounded to 0.1 ms, and `p95` the 95th percentile by the nearest-rank method:
    the value at 1-based position ceil(0.95 * n) of the ascending durations, so
    always a duration that some job took (1..100 ms gives 95).

    The queries do not depend on the number of jobs or pipelines: one GROUP BY
    (pipeline, status) gives the counts and the sums behind the averages, and the
    p95 rows are picked with `ROW_NUMBER() OVER (PARTITION BY pipeline ORDER BY
    duration_ms)` compared with `COUNT(*) OVER (PARTITION BY pipeline)`: one
    query for every pipeline at once, one more over all jobs. Window functions behave the same on
    SQLite and PostgreSQL, so both give the same answer. Three queries at most,
    one when no completed job in the window has a duration.

    Raises `ValueError` for a window not in :data:`WINDOWS`.
    """
    if window not in WINDOWS:
        raise ValueError(f"Unknown window {window!r}; expected one of: {', '.join(WINDOWS)}.")
    until = now or timezone.now()
    since = until - WINDOWS[window]
    # The caller's ordering would otherwise join the GROUP BY.
    in_window = jobs.filter(created_at__gte=since, created_at__lte=until).order_by()

    pipelines: dict[str, dict] = {}
    for row in in_window.values("pipeline__name", "status").annotate(
        n=Count("pk"), duration_sum=Sum("duration_ms"), durations=Count("duration_ms")
    ):
        entry = pipelines.setdefault(row["pipeline__name"], {"counts": {}, "duration_sum": 0, "durations": 0})
        entry["counts"][row["status"]] = entry["counts"].get(row["status"], 0) + row["n"]
        if row["status"] == JobStatus.COMPLETED:
            entry["duration_sum"] += row["duration_sum"] or 0
            entry["durations"] += row["durations"]

    timed = in_window.filter(status=JobStatus.COMPLETED, duration_ms__isnull=False)
    has_durations = any(entry["durations"] for entry in pipelines.values())
    p95_by_pipeline, p95_overall = {}, None
    if has_durations:
        p95_by_pipeline = dict(_at_p95(timed, partition_by="pipeline_id").values_list("pipeline__name", "duration_ms"))
        p95_overall = next(iter(_at_p95(timed).values_list("duration_ms", flat=True)), None)

    counts = {status.value: 0 for status in JobStatus}
    for entry in pipelines.values():
        for status, n in entry["counts"].items():
            counts[status] = counts.get(status, 0) + n
    return {
        "window": window,
        "since": _iso(since),
        "until": _iso(until),
        "total": sum(counts.values()),
        "counts": counts,
        "success_rate": _success_rate(counts),
        "processing_time_ms": {
            "avg": _mean(
                sum(entry["duration_sum"] for entry in pipelines.values()),
                sum(entry["durations"] for entry in pipelines.values()),
            ),
            "p95": p95_overall,
        },
        "pipelines": [
            {
                "pipeline": name,
                "total": sum(entry["counts"].values()),
                "counts": {
                    status.value: entry["counts"][status] for status in JobStatus if entry["counts"].get(status)
                },
                "success_rate": _success_rate(entry["counts"]),
                "processing_time_ms": {
                    "avg": _mean(entry["duration_sum"], entry["durations"]),
                    "p95": p95_by_pipeline.get(name),
                },
            }
            for name, entry in sorted(pipelines.items())
        ],
    }


def _at_p95(timed: QuerySet[Job], *, partition_by: str | None = None) -> QuerySet[Job]:
    """The job at the nearest-rank 95th percentile of `duration_ms`: one per partition, or one overall."""
    partition = [F(partition_by)] if partition_by else None
    ranked = timed.annotate(
        position=Window(RowNumber(), partition_by=partition, order_by=F("duration_ms").asc()),
        size=Window(Count("pk"), partition_by=partition),
    )
    # ceil(size * 95 / 100) without floating point.
    rank = (F("size") * P95_PERCENT + 99) / 100
    return ranked.filter(position=rank)


def _success_rate(counts: dict[str, int]) -> float | None:
    completed = counts.get(JobStatus.COMPLETED, 0)
    finished = completed + counts.get(JobStatus.FAILED, 0)
    return round(completed / finished, 4) if finished else None


def _mean(total: int, n: int) -> float | None:
    return round(total / n, 1) if n else None


def _iso(moment: datetime) -> str:
    """ISO 8601 in UTC with a `Z`, as the API renders its other timestamps."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
