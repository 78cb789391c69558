"""Reads behind the operators' admin: the job list's filters and search, the dashboard's charts,
failure triage, worker activity, and a job's ledger and wait reasons.

Every query here is bounded by an index (see jobs migration 0008): the list's
filters and sorts, the per-minute and per-day throughput (by completion time),
the failure groups (failed jobs of a window), the worker figures (`locked_by`
prefix). Counts that could run into millions are bounded
(:func:`jobsite.counting.bounded_count`). The dashboard's other numbers
come from the selectors `/api/v1/jobs/stats/` and `/health/queue` use.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import CharField, Count, Max, Min, Q, QuerySet, Value
from django.db.models.functions import Cast, Left, StrIndex, Substr, TruncDay, TruncMinute
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from jobsite.counting import bounded_count

from .models import STATUS_GROUPS, Job, JobEventType, JobStatus, StageRun, WorkerProcess
from .selectors import live_workers
from .services import PRIORITY_BANDS, band_queue
from .stats import WINDOWS

FINISHED_STATUSES = [JobStatus.COMPLETED, JobStatus.FAILED]
HELD_STATUSES = [JobStatus.PROCESSING, JobStatus.CANCELLING]

# The admin's "Created" filter: the API's `limit_results` periods plus the stats windows.
CREATED_PERIODS = {
    "1h": "Last hour",
    "24h": "Last 24 hours",
    "today": "Today (since 00:00 UTC)",
    "7d": "Last 7 days",
    "30d": "Last 30 days",
}


def period_start(period: str) -> datetime:
    """The start of a "Created" period, from now; `today` is since 00:00 UTC, as the API's `limit_results=Today`."""
    now = timezone.now()
    if period == "today":
        return day_start(now)
    if period in WINDOWS:
        return now - WINDOWS[period]
    raise ValueError(f"Unknown period {period!r}; expected one of: {', '.join(CREATED_PERIODS)}.")


# --- The job list: criteria shared by the admin's filters and the bulk operations ------


def job_search(jobs: QuerySet[Job], term: str) -> QuerySet[Job]:
    """Exact-or-prefix search: a full UUID matches that job only; otherwise an id prefix
    (hex digits, dashes allowed), a username prefix or an action prefix (case-sensitive).

    Each branch is a range on an index (the primary key, or the pattern indexes
    on username and action), never a scan for a substring.
    """
    term = term.strip()
    if not term:
        return jobs
    try:
        return jobs.filter(pk=uuid.UUID(term))
    except ValueError:
        pass
    match = Q(username__startswith=term) | Q(action__startswith=term)
    digits = term.replace("-", "").lower()
    if len(digits) < 32 and re.fullmatch(r"[0-9a-f]+", digits):
        match |= Q(pk__gte=uuid.UUID(digits.ljust(32, "0")), pk__lte=uuid.UUID(digits.ljust(32, "f")))
    return jobs.filter(match)


@dataclass(frozen=True)
class JobCriteria:
    """What the admin's job list is filtered by, as a value that can be stored and applied later.

    The admin's list filters each apply their own part; a bulk operation stores
    the whole (with `until` set, so that jobs created later do not join) and
    applies it in its worker.
    """

    statuses: tuple[str, ...] = ()
    created_since: datetime | None = None
    until: datetime | None = None
    pipeline: str = ""
    username: str = ""
    action: str = ""
    worker: str = ""
    has_error: bool | None = None
    error_group: str = ""
    search: str = ""
    ids: tuple[str, ...] = ()  # selected jobs, when the operator picked them one by one
    owner: str = ""  # a user id: set for callers who may see only their own jobs

    # Query-string names of the admin list, one per criterion.
    PARAMS = ("status", "created", "pipeline", "username", "action", "worker", "has_error", "error", "q")

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> JobCriteria:
        """Read the admin list's query string; raise ValueError naming a bad value."""
        # The API's status parser (it loads REST framework and django-filter: here, not in workers).
        from .filters import parse_statuses

        values: dict[str, Any] = {}
        if params.get("status"):
            try:
                values["statuses"] = tuple(sorted(parse_statuses(params["status"])))
            except Exception as exc:
                raise ValueError(f"Unknown status {params['status']!r}.") from exc
        if params.get("created"):
            values["created_since"] = period_start(params["created"])
        if params.get("has_error"):
            if params["has_error"] not in ("yes", "no"):
                raise ValueError("has_error must be yes or no.")
            values["has_error"] = params["has_error"] == "yes"
        for name, key in (("pipeline", "pipeline"), ("username", "username"), ("action", "action")):
            values[name] = params.get(key, "")
        values["worker"] = params.get("worker", "")
        values["error_group"] = params.get("error", "")
        values["search"] = params.get("q", "").strip()
        return cls(**values)

    def narrowed(self, **changes) -> JobCriteria:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data.update(changes)
        return JobCriteria(**data)

    def apply(self, jobs: QuerySet[Job]) -> QuerySet[Job]:
        """Filter `jobs` by every criterion that SQL can decide (see :meth:`matches` for the rest)."""
        if self.statuses and set(self.statuses) < set(JobStatus.values):
            jobs = jobs.filter(status__in=list(self.statuses))
        if self.created_since:
            jobs = jobs.filter(created_at__gte=self.created_since)
        if self.until:
            jobs = jobs.filter(created_at__lte=self.until)
        if self.pipeline:
            jobs = jobs.filter(pipeline__name=self.pipeline)
        if self.username:
            jobs = jobs.filter(username=self.username)
        if self.action:
            jobs = jobs.filter(action=self.action)
        if self.worker:
            jobs = jobs.filter(locked_by__startswith=f"{self.worker}/")
        if self.has_error is not None:
            jobs = jobs.exclude(error_message="") if self.has_error else jobs.filter(error_message="")
        if self.error_group:
            jobs = jobs.filter(error_message__startswith=error_group_prefix(self.error_group))
        if self.ids:
            jobs = jobs.filter(pk__in=list(self.ids))
        if self.owner:
            jobs = jobs.filter(user_id=self.owner)
        return job_search(jobs, self.search)

    def matches(self, job: Job) -> bool:
        """The part SQL cannot decide: whether the job's normalised error is the group's."""
        return not self.error_group or error_group_key(job.error_message) == self.error_group

    def to_json(self) -> dict:
        data = asdict(self)
        for name in ("created_since", "until"):
            data[name] = data[name].isoformat() if data[name] else None
        data["statuses"] = list(self.statuses)
        data["ids"] = list(self.ids)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> JobCriteria:
        values = {f.name: data[f.name] for f in fields(cls) if f.name in data}
        for name in ("created_since", "until"):
            if values.get(name):
                values[name] = parse_datetime(values[name])
        values["statuses"] = tuple(values.get("statuses") or ())
        values["ids"] = tuple(values.get("ids") or ())
        return cls(**values)

    def describe(self) -> str:
        """The filter in words, for the operation's title."""
        parts = []
        if self.statuses:
            group = next((g for g, s in STATUS_GROUPS.items() if set(s) == set(self.statuses)), None)
            parts.append(f"status {group or ', '.join(self.statuses)}")
        if self.created_since:
            parts.append(f"created since {self.created_since:%Y-%m-%d %H:%M} UTC")
        for name in ("pipeline", "username", "action", "worker"):
            if getattr(self, name):
                parts.append(f"{name} {getattr(self, name)}")
        if self.has_error is not None:
            parts.append("with an error" if self.has_error else "without an error")
        if self.error_group:
            parts.append(f"error like “{self.error_group[:120]}”")
        if self.search:
            parts.append(f"matching “{self.search}”")
        if self.ids:
            parts.append(f"{len(self.ids)} selected jobs")
        if self.owner:
            parts.append("own jobs")
        return "; ".join(parts) or "all jobs"


# --- Failure triage ---------------------------------------------------------------------

# What varies between errors of one kind, in the order tried at each position, and its placeholder.
_VARIABLE_PARTS = [
    (r"https?://\S+", "<url>"),
    (r"(?i:[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12})", "<uuid>"),
    (r"\b[\w.-]+:\d+:[0-9a-f]{6,}\b", "<worker>"),
    (r"'[^']*'|\"[^\"]*\"", "<str>"),
    (r"(?i:\b0x[0-9a-f]+\b)", "<hex>"),
    (r"\d+(?:\.\d+)?", "<n>"),
]
_VARIABLE = re.compile("|".join(f"(?P<p{i}>{pattern})" for i, (pattern, _) in enumerate(_VARIABLE_PARTS)))
_PLACEHOLDERS = {f"p{i}": placeholder for i, (_, placeholder) in enumerate(_VARIABLE_PARTS)}
# A stage's retry count is part of the message but not of the error.
_ATTEMPT = re.compile(r" \(attempt \d+ of \d+\)")
ERROR_GROUP_MAX = 300


def error_group_key(message: str) -> str:
    """The error's first line with its variable parts (ids, numbers, URLs, quoted values) replaced by placeholders.

    Jobs whose errors differ only in those parts fall in one failure group:
    `KeyError: 'customer_17'` and `KeyError: 'customer_42'` are `KeyError: <str>`.
    """
    text = _ATTEMPT.sub("", (message or "").strip().split("\n", 1)[0])
    return _VARIABLE.sub(lambda m: _PLACEHOLDERS[m.lastgroup], text)[:ERROR_GROUP_MAX]


def error_group_prefix(key: str) -> str:
    """The literal start every error of the group shares (what precedes the first placeholder or attempt count)."""
    cut = min((i for i in (key.find("<"), key.find(" (attempt")) if i >= 0), default=len(key))
    return key[:cut]


@dataclass
class FailureGroup:
    pipeline: str
    error: str
    count: int
    first_seen: datetime
    last_seen: datetime
    sample_job_id: str
    sample_error: str

    @property
    def prefix(self) -> str:
        return error_group_prefix(self.error)


def failure_groups(*, since: datetime, jobs: QuerySet[Job] | None = None, limit: int = 100) -> list[FailureGroup]:
    """Failed jobs created since `since`, grouped by pipeline and normalised error, biggest first.

    SQL groups identical messages (on their first 500 characters); the groups
    that differ only in ids and numbers are then merged here, so the work
    grows with the number of distinct messages, not of failed jobs.
    """
    from pipelines.models import Pipeline

    jobs = Job.objects.all() if jobs is None else jobs
    rows = (
        jobs.filter(status=JobStatus.FAILED, created_at__gte=since)
        .order_by()
        .values("pipeline_id", text=Substr("error_message", 1, 500))
        .annotate(
            n=Count("*"), first=Min("completed_at"), last=Max("completed_at"), sample=Max(Cast("id", CharField()))
        )
        .values_list("pipeline_id", "text", "n", "first", "last", "sample")
    )
    names = dict(Pipeline.objects.values_list("id", "name"))
    groups: dict[tuple[str, str], FailureGroup] = {}
    for pipeline_id, text, count, first, last, sample in rows:
        key = (names.get(pipeline_id, "?"), error_group_key(text))
        first, last = first or since, last or since
        group = groups.get(key)
        if group is None:
            groups[key] = FailureGroup(key[0], key[1], count, first, last, sample, text)
            continue
        group.count += count
        group.first_seen = min(group.first_seen, first)
        if last >= group.last_seen:
            group.last_seen, group.sample_job_id, group.sample_error = last, sample, text
    for group in groups.values():
        group.sample_job_id = str(uuid.UUID(group.sample_job_id))
    return sorted(groups.values(), key=lambda g: (-g.count, g.pipeline, g.error))[:limit]


# --- Dashboard numbers and charts --------------------------------------------------------


def status_counts_now(jobs: QuerySet[Job] | None = None) -> dict[str, tuple[int, bool]]:
    """Jobs in each unfinished status now, as `(count, estimated)` (exact up to API_COUNT_EXACT_MAX)."""
    jobs = Job.objects.all() if jobs is None else jobs
    return {status: bounded_count(jobs.filter(status=status)) for status in STATUS_GROUPS["active"]}


def group_counts(counts: Mapping[str, int]) -> dict[str, int]:
    """The seed's status groups (running, completed, failed, all) from per-status counts."""
    return {
        "running": sum(counts.get(s, 0) for s in STATUS_GROUPS["running"]),
        "completed": counts.get(JobStatus.COMPLETED, 0),
        "failed": counts.get(JobStatus.FAILED, 0),
        "all": sum(counts.values()),
    }


def pipeline_table(stats_by_window: Mapping[str, dict]) -> list[dict]:
    """Per-pipeline rows across windows from `job_stats` results: `{pipeline, windows: {w: stats or None}}`."""
    names = sorted({p["pipeline"] for stats in stats_by_window.values() for p in stats["pipelines"]})
    by_window = {w: {p["pipeline"]: p for p in stats["pipelines"]} for w, stats in stats_by_window.items()}
    return [{"pipeline": name, "windows": {w: by_window[w].get(name) for w in stats_by_window}} for name in names]


def throughput_per_minute(*, now: datetime | None = None, minutes: int = 60) -> list[dict]:
    """Completed and failed jobs per minute over the last `minutes`, oldest first, empty minutes included."""
    now = now or timezone.now()
    end = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    start = end - timedelta(minutes=minutes)
    return _buckets(
        TruncMinute("completed_at"), start, end, timedelta(minutes=1), lambda t: t.replace(second=0, microsecond=0)
    )


def day_start(moment: datetime) -> datetime:
    """00:00 UTC of `moment`'s day."""
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def closed_days(*, now: datetime | None = None, days: int = 30) -> list[dict]:
    """Completed and failed jobs per UTC day for the `days - 1` days before today, oldest first."""
    today = day_start(now or timezone.now())
    return _buckets(TruncDay("completed_at"), today - timedelta(days=days - 1), today, timedelta(days=1), day_start)


def daily_history(*, now: datetime | None = None, days: int = 30, closed: list[dict] | None = None) -> list[dict]:
    """Completed and failed jobs per UTC day over the last `days` days (today included), oldest first.

    `closed` are the days before today as :func:`closed_days` gave them (the
    dashboard keeps them in its snapshot); today is always counted now.
    """
    now = now or timezone.now()
    today = day_start(now)
    if closed is None:
        closed = closed_days(now=now, days=days)
    return closed + _buckets(TruncDay("completed_at"), today, today + timedelta(days=1), timedelta(days=1), day_start)


def _buckets(trunc, start: datetime, end: datetime, step: timedelta, floor) -> list[dict]:
    rows = (
        Job.objects.filter(completed_at__gte=start, completed_at__lt=end, status__in=FINISHED_STATUSES)
        .order_by()
        .values("status", at=trunc)
        .annotate(n=Count("*"))
    )
    counts: dict[datetime, dict[str, int]] = {}
    for row in rows:
        counts.setdefault(floor(row["at"]), {})[row["status"]] = row["n"]
    buckets, at = [], start
    while at < end:
        seen = counts.get(at, {})
        buckets.append({"at": at, "completed": seen.get("completed", 0), "failed": seen.get("failed", 0)})
        at += step
    return buckets


# --- Workers ----------------------------------------------------------------------------


def worker_state(worker: WorkerProcess, *, now: datetime | None = None) -> str:
    """`alive` (beat within WORKER_DEAD_AFTER_SECONDS), `stale` (silent longer, never said it stopped) or `stopped`."""
    now = now or timezone.now()
    if worker.stopped_at:
        return "stopped"
    if now - worker.last_seen_at > timedelta(seconds=settings.WORKER_DEAD_AFTER_SECONDS):
        return "stale"
    return "alive"


def stale_workers(*, now: datetime | None = None, within: timedelta = timedelta(days=1)) -> QuerySet[WorkerProcess]:
    """Workers that went silent without stopping, seen within `within`: their jobs are recovered."""
    now = now or timezone.now()
    return WorkerProcess.objects.filter(
        stopped_at__isnull=True,
        last_seen_at__lt=now - timedelta(seconds=settings.WORKER_DEAD_AFTER_SECONDS),
        last_seen_at__gte=now - within,
    ).order_by("-last_seen_at")


def _worker_of_lock():
    """SQL for the worker process part of `locked_by` (`<process id>/<thread>`)."""
    return Left("locked_by", StrIndex("locked_by", Value("/")) - 1)


def worker_activity(worker_ids: list[str], *, now: datetime | None = None) -> dict[str, dict]:
    """For each worker: the jobs it holds now and the jobs it finished in the last hour (completed, failed).

    Two grouped queries whatever the number of workers, each bounded by an
    index: the held jobs (by status), the jobs finished in the last hour (by
    completion time; `locked_by` keeps the worker of the last attempt).
    """
    now = now or timezone.now()
    activity = {w: {"held": 0, "completed": 0, "failed": 0} for w in worker_ids}
    if not worker_ids:
        return activity
    locked = Job.objects.exclude(locked_by="").order_by()
    held = locked.filter(status__in=HELD_STATUSES).values(worker=_worker_of_lock()).annotate(n=Count("*"))
    for row in held:
        if row["worker"] in activity:
            activity[row["worker"]]["held"] = row["n"]
    finished = (
        locked.filter(completed_at__gte=now - timedelta(hours=1), status__in=FINISHED_STATUSES)
        .values("status", worker=_worker_of_lock())
        .annotate(n=Count("*"))
    )
    for row in finished:
        if row["worker"] in activity:
            activity[row["worker"]][row["status"]] = row["n"]
    return activity


def jobs_held_by(worker_id: str) -> QuerySet[Job]:
    """The jobs a worker process runs now, oldest claim first."""
    return (
        Job.objects.filter(locked_by__startswith=f"{worker_id}/", status__in=HELD_STATUSES)
        .select_related("pipeline")
        .order_by("locked_at")
    )


# --- A job's ledger ---------------------------------------------------------------------


@dataclass
class LedgerEntry:
    """One line of a job's timeline."""

    at: datetime
    title: str
    detail: str = ""
    tone: str = ""  # ok, bad, warn or empty
    attempt: int | None = None
    worker: str = ""
    duration_ms: int | None = None
    source: str = ""  # event, stage, audit or job
    order: int = 0
    offset_ms: int = field(default=0)


def _ms(delta: timedelta) -> int:
    return round(delta.total_seconds() * 1000)


def job_attempt_workers(job: Job, events: list) -> dict[int, str]:
    """The worker thread that ran each attempt: from the `job.started` events, else the job's last lock."""
    workers = {
        int(e.data["attempt"]): e.data.get("worker", "")
        for e in events
        if e.type == JobEventType.STARTED and "attempt" in e.data
    }
    if job.locked_by and job.attempts and job.attempts not in workers:
        workers[job.attempts] = job.locked_by
    return workers


def job_ledger(job: Job, *, audit_rows: list | None = None) -> dict:
    """Everything that happened to a job, in order, to the millisecond.

    Built from the job's events (created, each attempt's claim with its worker,
    retries with their backoff, the outcome), its stage runs (start and finish
    of each, with the attempt and worker that ran it), its audit rows (cancel,
    retry and requeue requests, by whom) and its own timestamps where no event
    records them (jobs from before events were written).
    """
    events = list(job.events.order_by("created_at", "id"))
    runs = list(job.stage_runs.order_by("started_at", "index", "attempt"))
    workers = job_attempt_workers(job, events)
    entries: list[LedgerEntry] = []
    types = {e.type for e in events}

    if JobEventType.CREATED not in types:
        entries.append(LedgerEntry(job.created_at, "Created", _created_detail(job), source="job"))
    for event in events:
        entries.append(_event_entry(event))
    if job.queued_at:
        entries.append(LedgerEntry(job.queued_at, "Sent to the broker", "queued", source="job", order=1))
    if JobEventType.STARTED not in types and job.started_at:
        entries.append(
            LedgerEntry(
                job.started_at, "Started", f"attempt {job.attempts or 1}", attempt=job.attempts or 1,
                worker=workers.get(job.attempts, ""), source="job", order=2,
            )
        )  # fmt: skip
    if not types & {JobEventType.COMPLETED, JobEventType.FAILED, JobEventType.CANCELLED} and job.completed_at:
        tone = {"completed": "ok", "failed": "bad"}.get(job.status, "warn")
        entries.append(
            LedgerEntry(
                job.completed_at, job.get_status_display(), job.error_message[:300], tone=tone,
                duration_ms=job.duration_ms, source="job", order=9,
            )
        )  # fmt: skip
    for run in runs:
        worker = workers.get(run.job_attempt, "")
        entries.append(
            LedgerEntry(
                run.started_at, f"Stage {run.index + 1} “{run.name}” started", f"{run.stage_type}, try {run.attempt}",
                attempt=run.job_attempt, worker=worker, source="stage", order=3,
            )
        )  # fmt: skip
        if run.finished_at:
            tone = {"completed": "ok", "failed": "bad"}.get(run.status, "warn")
            entries.append(
                LedgerEntry(
                    run.finished_at, f"Stage {run.index + 1} “{run.name}” {run.status}", run.error[:300], tone=tone,
                    attempt=run.job_attempt, worker=worker, duration_ms=run.duration_ms, source="stage", order=4,
                )
            )  # fmt: skip
    for row in audit_rows or []:
        verb = row.action.rsplit(".", 1)[-1]
        if verb in ("create", "list", "retrieve", "result"):
            continue
        reason = (row.request_details or {}).get("operation", {})
        entries.append(
            LedgerEntry(
                row.timestamp, f"{verb.replace('_', ' ').capitalize()} requested by {row.principal}",
                ", ".join(f"{k}: {v}" for k, v in reason.items()) if isinstance(reason, dict) else "",
                tone="" if row.success else "bad", source="audit", order=5,
            )
        )  # fmt: skip
    entries.sort(key=lambda e: (e.at, e.order))
    for entry in entries:
        entry.offset_ms = _ms(entry.at - job.created_at)
    return {"entries": entries, "events": events, "stage_runs": runs, "attempt_workers": workers}


def _created_detail(job: Job) -> str:
    if job.run_at and job.run_at > job.created_at:
        return f"scheduled for {job.run_at:%Y-%m-%d %H:%M:%S} UTC"
    return f"priority {job.priority}"


def _event_entry(event) -> LedgerEntry:
    data = event.data or {}
    attempt = data.get("attempt")
    if event.type == JobEventType.CREATED:
        detail = data.get("status", "")
        if data.get("run_at"):
            detail += f", runs at {data['run_at']}"
        return LedgerEntry(event.created_at, "Created", detail, source="event")
    if event.type == JobEventType.STARTED:
        return LedgerEntry(
            event.created_at, f"Attempt {attempt} claimed", "", attempt=attempt, worker=data.get("worker", ""),
            source="event", order=2,
        )  # fmt: skip
    if event.type == JobEventType.RETRYING:
        detail = f"stage {data.get('stage', '?')} failed: {data.get('error', '')}"[:300]
        if data.get("delay_ms") is not None:
            detail += f"; backoff {data['delay_ms']} ms, runs again at {data.get('run_at', '?')}"
        return LedgerEntry(event.created_at, "Retrying", detail, tone="warn", attempt=attempt, source="event", order=6)
    if event.type == JobEventType.COMPLETED:
        return LedgerEntry(
            event.created_at, "Completed", "", tone="ok", attempt=attempt, duration_ms=data.get("duration_ms"),
            source="event", order=9,
        )  # fmt: skip
    if event.type == JobEventType.FAILED:
        detail = str(data.get("error", ""))[:300]
        return LedgerEntry(
            event.created_at, "Failed", detail, tone="bad", attempt=attempt, duration_ms=data.get("duration_ms"),
            source="event", order=9,
        )  # fmt: skip
    return LedgerEntry(event.created_at, "Cancelled", "", tone="warn", attempt=attempt, source="event", order=9)


def job_stage_runs(job: Job) -> QuerySet[StageRun]:
    return job.stage_runs.order_by("index", "attempt")


# --- Why isn't this job running? ---------------------------------------------------------


def job_queue_name(priority: int, declared: set[str]) -> str:
    """The broker queue a job of this priority waits in: its priority band's queue (jobs.services.band_queue)."""
    band = band_queue(priority)
    return band if band in declared else "jobs"


def _band(priority: int) -> tuple[int, int]:
    """The priorities sharing a job's band (its queue)."""
    floors = sorted(floor for _, floor in PRIORITY_BANDS)
    low = max(floor for floor in floors if floor <= priority)
    higher = [floor for floor in floors if floor > low]
    return low, (higher[0] - 1 if higher else 10)


def _ago(delta: timedelta) -> str:
    seconds = delta.total_seconds()
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@dataclass
class WaitReason:
    tone: str  # info, warn or bad
    text: str


def job_wait_reasons(
    job: Job,
    *,
    depths: Mapping[str, dict] | None,
    broker_error: str = "",
    now: datetime | None = None,
) -> list[WaitReason]:
    """Why a job that has not finished is not running (or, held by a worker, whether that worker is alive).

    `depths` are the broker's queue depths (None when the broker is
    unreachable, with `broker_error` saying why).
    """
    now = now or timezone.now()
    reasons: list[WaitReason] = []
    declared = set(depths or ())
    queue = job_queue_name(job.priority, declared)
    workers = list(live_workers(now=now))
    consumers = [w for w in workers if queue in (w.queues or [])]

    if job.status in HELD_STATUSES:
        owner = job.locked_by.split("/")[0]
        worker = WorkerProcess.objects.filter(worker_id=owner).first()
        beat = job.heartbeat_at or job.locked_at
        if worker is None:
            reasons.append(WaitReason("bad", f"Held by {job.locked_by or 'no worker'}, which never reported in."))
        else:
            state = worker_state(worker, now=now)
            tone = "info" if state == "alive" else "bad"
            reasons.append(
                WaitReason(
                    tone,
                    f"Held by worker {job.locked_by}, whose last heartbeat was {_ago(now - worker.last_seen_at)} "
                    f"ago ({state}).",
                )
            )
        if beat:
            stuck = timedelta(minutes=settings.JOB_STUCK_TIMEOUT_MINUTES)
            age = now - beat
            tone = "bad" if age > stuck else "info"
            reasons.append(WaitReason(tone, f"The job's own heartbeat is {_ago(age)} old (stuck after {_ago(stuck)})."))
        if job.status == JobStatus.CANCELLING:
            reasons.append(WaitReason("warn", "Cancel requested: the worker stops it at its next check."))
        return reasons

    if job.status == JobStatus.SCHEDULED and job.run_at:
        if job.run_at > now:
            until = f"{job.run_at:%Y-%m-%d %H:%M:%S} UTC"
            reasons.append(WaitReason("info", f"Scheduled until {until} (in {_ago(job.run_at - now)})."))
        else:
            reasons.append(WaitReason("warn", f"Its run_at passed {_ago(now - job.run_at)} ago; recovery re-sends it."))
    if job.status == JobStatus.RETRYING:
        last = job.events.filter(type=JobEventType.RETRYING).order_by("-created_at").first()
        backoff = f" after a backoff of {last.data['delay_ms']} ms" if last and "delay_ms" in last.data else ""
        when = job.run_at
        if when and when > now:
            at = f"{when:%H:%M:%S}.{when.microsecond // 1000:03d}"
            reasons.append(WaitReason("info", f"Retrying at {at} UTC{backoff} (in {_ago(when - now)})."))
        elif when:
            reasons.append(
                WaitReason("warn", f"Its retry was due {_ago(now - when)} ago{backoff}; recovery re-sends it.")
            )
        if job.error_message:
            reasons.append(WaitReason("info", f"Last error: {job.error_message[:300]}"))
    if job.status == JobStatus.PENDING:
        reasons.append(
            WaitReason(
                "warn",
                f"Not yet handed to the broker (pending for {_ago(now - job.updated_at)}); it is re-sent after "
                f"{settings.JOB_OUTBOX_RESEND_SECONDS} s by recovery.",
            )
        )
    if job.status == JobStatus.QUEUED:
        low, high = _band(job.priority)
        ahead = Job.objects.filter(status=JobStatus.QUEUED, priority__gte=low, priority__lte=high).filter(
            Q(priority__gt=job.priority) | Q(priority=job.priority, queued_at__lt=job.queued_at or job.created_at)
        )
        count, estimated = bounded_count(ahead)
        reasons.append(
            WaitReason(
                "info",
                f"Queued behind {'about ' if estimated else ''}{count} job(s) in queue {queue}"
                + (f" (queued {_ago(now - job.queued_at)} ago)." if job.queued_at else "."),
            )
        )
    if broker_error:
        reasons.append(WaitReason("bad", f"The broker is unreachable: {broker_error}"))
    elif depths is not None and queue in depths:
        depth = depths[queue]
        reasons.append(
            WaitReason(
                "info",
                f"Queue {queue}: {_n(depth['ready'])} ready, {_n(depth['delayed'])} delayed, "
                f"{_n(depth['in_flight'])} in flight.",
            )
        )
    if not consumers:
        reasons.append(WaitReason("bad", f"No live worker consumes queue {queue}."))
    else:
        threads = sum(w.threads for w in consumers)
        reasons.append(
            WaitReason(
                "info",
                f"{len(consumers)} live worker(s) consume {queue}" + (f", {threads} threads." if threads else "."),
            )
        )
    return reasons


def _n(value) -> str:
    return "?" if value is None else str(value)
