"""Template filters and tags of the operators' admin: badges, durations, relative times, charts."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from html import escape

from django import template
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

register = template.Library()

# Shown for a missing value.
NONE = "\N{EN DASH}"

STATUS_TONES = {
    "pending": "wait",
    "scheduled": "wait",
    "queued": "wait",
    "processing": "run",
    "retrying": "warn",
    "cancelling": "warn",
    "completed": "ok",
    "failed": "bad",
    "cancelled": "off",
    "running": "run",
    "stopped": "off",
    "alive": "ok",
    "stale": "bad",
}


def badge_html(status: str, label: str = "") -> str:
    """The HTML of a status badge, escaped (for the job list's fast row builder)."""
    return f'<span class="js-badge js-{STATUS_TONES.get(status, "off")}">{escape(label or status)}</span>'


@register.filter
def status_badge(status: str, label: str = ""):
    """A coloured badge for a job, stage, operation or worker status."""
    return format_html('<span class="js-badge js-{}">{}</span>', STATUS_TONES.get(status, "off"), label or status)


@register.filter
def short_id(value) -> str:
    return str(value)[:8]


@register.filter
def duration(ms) -> str:
    """Milliseconds for people: `850 ms`, `1.25 s`, `3 min 05 s`, `2 h 03 min`."""
    if not isinstance(ms, int | float):
        return NONE
    ms = int(ms)
    if ms < 1000:
        return f"{ms} ms"
    if ms < 60_000:
        return f"{ms / 1000:.2f} s"
    seconds = ms // 1000
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


@register.filter
def age(delta) -> str:
    """A timedelta for people: `42 s`, `12 min`, `3.5 h`, `2.1 d`."""
    if delta is None:
        return NONE
    seconds = delta.total_seconds() if isinstance(delta, timedelta) else float(delta)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172_800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def relative_html(moment: datetime | None, now: datetime | None = None) -> str:
    """The HTML of :func:`relative` (only digits and fixed words: nothing to escape)."""
    if moment is None:
        return NONE
    delta = (now or timezone.now()) - moment
    text = f"{age(delta)} ago" if delta.total_seconds() >= 0 else f"in {age(-delta)}"
    return f'<time datetime="{moment.isoformat()}" title="{exact(moment)}">{text}</time>'


@register.filter
def relative(moment: datetime | None) -> str:
    """`3 min ago` or `in 20 s`, with the exact UTC time to the millisecond on hover."""
    return mark_safe(relative_html(moment))  # noqa: S308 - built from numbers only


@register.filter
def exact(moment: datetime | None) -> str:
    """UTC to the millisecond."""
    if moment is None:
        return NONE
    moment = moment.astimezone(UTC)
    return f"{moment:%Y-%m-%d %H:%M:%S}.{moment.microsecond // 1000:03d}"


@register.filter
def offset(ms) -> str:
    """Milliseconds since the job was created: `+1.234 s`."""
    if ms is None:
        return ""
    return f"+{ms / 1000:.3f} s" if ms >= 0 else f"-{-ms / 1000:.3f} s"


@register.filter
def pretty_json(value, limit: int = 20_000) -> str:
    """Indented JSON, cut at `limit` characters."""
    text = json.dumps(value, indent=2, sort_keys=True, default=str, ensure_ascii=False)
    return text if len(text) <= int(limit) else text[: int(limit)] + f"\n… ({len(text) - int(limit)} more characters)"


@register.filter
def json_size(value) -> int:
    return len(json.dumps(value, default=str))


@register.filter
def percent(value) -> str:
    """A 0..1 rate as a percentage; a missing one (None, or a missing key in a template) as a dash."""
    return f"{100 * value:.1f} %" if isinstance(value, int | float) else NONE


@register.filter
def get(mapping, key):
    return mapping.get(key) if mapping else None


@register.inclusion_tag("admin/jobs/job/change_list_results.html")
def job_result_list(changelist):
    """The job list's table: the admin's sortable headers, rows from `JobAdmin.result_rows`."""
    from django.contrib.admin.templatetags.admin_list import result_headers

    headers = list(result_headers(changelist))
    return {
        "cl": changelist,
        "result_headers": headers,
        "num_sorted_fields": sum(1 for h in headers if h["sortable"] and h["sorted"]),
        "rows": changelist.model_admin.result_rows(changelist),
    }


@register.simple_tag
def progress_bar(value, label: str = ""):
    value = f"{max(0.0, min(100.0, float(value or 0))):.0f}"
    return format_html(
        '<span class="js-progress" title="{}{} %"><span style="width:{}%"></span></span>', label, value, value
    )


@register.simple_tag
def stacked_bars(buckets, unit: str = "minute", width: int = 720, height: int = 140):
    """An inline SVG of completed (green) and failed (red) per bucket, drawn on the server.

    `buckets` are `{"at", "completed", "failed"}` dicts, oldest first; every bar
    has a tooltip with its exact counts.
    """
    if not buckets:
        return ""
    top = max((b["completed"] + b["failed"] for b in buckets), default=0) or 1
    left, bottom = 40, 18
    plot_w, plot_h = width - left - 4, height - bottom - 6
    step = plot_w / len(buckets)
    bar = max(1.0, step * 0.8)
    label_every = 10 if unit == "minute" else 5
    bars, labels = [], []
    for index, bucket in enumerate(buckets):
        x = left + index * step
        done_h = plot_h * bucket["completed"] / top
        fail_h = plot_h * bucket["failed"] / top
        when = f"{bucket['at']:%H:%M}" if unit == "minute" else f"{bucket['at']:%b %d}"
        tip = f"{when} UTC: {bucket['completed']} completed, {bucket['failed']} failed"
        bars.append(
            (
                tip,
                f"{x:.1f}",
                f"{6 + plot_h - done_h:.1f}",
                f"{bar:.1f}",
                f"{done_h:.1f}",
                f"{x:.1f}",
                f"{6 + plot_h - done_h - fail_h:.1f}",
                f"{bar:.1f}",
                f"{fail_h:.1f}",
            )
        )
        if index % label_every == 0:
            labels.append((f"{x:.1f}", f"{height - 4}", when))
    return format_html(
        '<svg class="js-chart" viewBox="0 0 {w} {h}" width="100%" role="img" aria-label="{aria}">'
        '<line x1="{l}" y1="6" x2="{l}" y2="{base}" class="axis"/>'
        '<line x1="{l}" y1="{base}" x2="{w}" y2="{base}" class="axis"/>'
        '<text x="{tx}" y="14" class="tick" text-anchor="end">{top}</text>'
        '<text x="{tx}" y="{base}" class="tick" text-anchor="end">0</text>'
        "{bars}{labels}</svg>",
        w=width,
        h=height,
        l=left,
        tx=left - 4,
        base=f"{6 + plot_h:.1f}",
        top=top,
        aria=f"Completed and failed jobs per {unit}",
        bars=format_html_join(
            "",
            '<g><title>{}</title><rect class="ok" x="{}" y="{}" width="{}" height="{}"/>'
            '<rect class="bad" x="{}" y="{}" width="{}" height="{}"/></g>',
            bars,
        ),
        labels=format_html_join("", '<text x="{}" y="{}" class="tick">{}</text>', labels),
    )
