"""The operators' admin for jobs: the queue list, the job ledger, workers, results, bulk operations.

Every action goes through a service (`jobs.services`, `jobs.operations`,
`jobs.bulk`) inside `admin_context`, so each changed job gets its audit row.
Actions on more rows than a page, or on "all matching", run as a tracked
background operation (`jobs.bulk`). What a user may not see or do is not shown:
actions need their permission, and a user without `jobs.view_all_jobs` sees and
acts on their own jobs only.
"""

from __future__ import annotations

import json
from datetime import timedelta
from functools import cached_property
from html import escape

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import F, OrderBy
from django.http import FileResponse, Http404, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django_dramatiq.models import Task
from dramatiq.errors import BrokerConnectionError

from audit.admin_site import ReadOnlyAdminMixin
from audit.context import admin_context
from audit.models import AuditLog
from jobsite.broker.depth import broker_queue_depths
from jobsite.counting import bounded_count
from pipelines.secrets import config_masked
from webhooks.selectors import deliveries_for_job

from . import bulk, dashboard, selectors
from .models import (
    TERMINAL_STATUSES,
    BulkOperation,
    BulkOperationKind,
    Job,
    JobResult,
    JobStatus,
    StageRun,
    WorkerProcess,
)
from .services import JobStateError
from .templatetags.jobs_admin import NONE, badge_html, duration, relative, relative_html, status_badge
from .workers import RUNNING_STATUSES

# The always-empty task table of django_dramatiq (its AdminMiddleware is not installed).
admin.site.unregister(Task)

PER_PAGE_VAR = "per_page"
PER_PAGE_CHOICES = (25, 50, 100, 200, 500)
# Up to this many selected jobs are acted on in the request; more go to a background operation.
SYNC_ACTION_MAX = 100
RESULT_PREVIEW_CHARS = 20_000
RESULT_PRETTY_MAX_BYTES = 256 * 1024
AUDIT_TRAIL_MAX = 200
DELIVERIES_MAX = 100  # of one job's webhook deliveries on its page (the API pages through all)


# --- The job list's cells: HTML strings, every value escaped --------------------------


def _error_cell(job, now) -> str:
    if not job.error_message:
        return ""
    first = job.error_message.splitlines()[0] if job.error_message.strip() else job.error_message
    return f'<span class="js-error" title="{escape(job.error_message[:1000])}">{escape(first[:70])}</span>'


def _text_cell(value: str) -> str:
    return f'<span title="{escape(value)}">{escape(value[:24])}</span>' if value else ""


def _progress_cell(job, now) -> str:
    value = round(max(0.0, min(100.0, job.progress or 0)))
    return f'<span class="js-progress" title="{value} %"><span style="width:{value}%"></span></span>'


JOB_CELLS = {
    "short_id": lambda job, now: f'<code title="{job.pk}">{str(job.pk)[:8]}</code>',
    "pipeline_shown": lambda job, now: f"{escape(job.pipeline.name)} <small>v{job.pipeline_version}</small>",
    "status_shown": lambda job, now: badge_html(job.status, job.get_status_display()),
    "priority_shown": lambda job, now: str(job.priority),
    "username_shown": lambda job, now: _text_cell(job.username),
    "action_shown": lambda job, now: _text_cell(job.action),
    "attempts_shown": lambda job, now: f"{job.attempts}/{job.max_attempts}",
    "progress_shown": _progress_cell,
    "created": lambda job, now: relative_html(job.created_at, now),
    "duration": lambda job, now: duration(job.duration_ms),
    "error_shown": _error_cell,
}


def _safe_cell(name: str, job):
    return mark_safe(JOB_CELLS[name](job, timezone.now()))  # noqa: S308 - JOB_CELLS escapes every value


# --- Pagination and ordering ----------------------------------------------------------


class EstimatedCountPaginator(Paginator):
    """Counts exactly up to API_COUNT_EXACT_MAX rows, then takes PostgreSQL's estimate (as the API does).

    Pages deeper than DEFERRED_FROM rows read the page's ids first (an
    index-only scan of the list's index) and then only those rows, instead of
    fetching and discarding every row before the offset.
    """

    DEFERRED_FROM = 1000
    count_estimated = False

    @property
    def count_exact_max(self) -> int:
        return settings.API_COUNT_EXACT_MAX

    @cached_property
    def count(self):
        count, self.count_estimated = bounded_count(self.object_list)
        return count

    def page(self, number):
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        top = bottom + self.per_page
        if bottom < self.DEFERRED_FROM:
            return self._get_page(self.object_list[bottom:top], number, self)
        ids = list(self.object_list.values_list("pk", flat=True)[bottom:top])
        rows = {row.pk: row for row in self.object_list.filter(pk__in=ids)}
        return self._get_page([rows[pk] for pk in ids if pk in rows], number, self)


def _per_page(request) -> int:
    try:
        value = int(request.GET.get(PER_PAGE_VAR, PER_PAGE_CHOICES[0]))
    except ValueError:
        return PER_PAGE_CHOICES[0]
    return value if value in PER_PAGE_CHOICES else PER_PAGE_CHOICES[0]


class JobChangeList(ChangeList):
    """The job list: rows per page from `per_page`, and sorts that an index serves in both directions."""

    # Each sortable field, then what breaks its ties, in the same direction.
    TIE_BREAKERS = {"created_at": ["id"], "priority": ["created_at", "id"], "duration_ms": ["id"]}
    # Jobs without a duration (not finished) come last whichever way the column is sorted.
    NULLS_LAST = {"duration_ms"}

    def get_filters_params(self, params=None):
        lookup_params = super().get_filters_params(params)
        lookup_params.pop(PER_PAGE_VAR, None)
        return lookup_params

    def get_results(self, request):
        self.list_per_page = _per_page(request)
        self.per_page_choices = [
            (n, self.get_query_string({PER_PAGE_VAR: n}, remove=["p"]), n == self.list_per_page)
            for n in PER_PAGE_CHOICES
        ]
        super().get_results(request)

    def get_ordering(self, request, queryset):
        ordering = super().get_ordering(request, queryset)
        first = ordering[0]
        if isinstance(first, OrderBy):
            name, descending = getattr(first.expression, "name", ""), first.descending
        else:
            name, descending = first.lstrip("-"), first.startswith("-")
        if name not in self.TIE_BREAKERS:
            return ordering
        sign = "-" if descending else ""
        primary = sign + name
        if name in self.NULLS_LAST:
            primary = F(name).desc(nulls_last=True) if descending else F(name).asc(nulls_last=True)
        return [primary, *(sign + field for field in self.TIE_BREAKERS[name])]

    # What the rows show: no JSON column of the job or its pipeline is read.
    LIST_FIELDS = (
        "id", "pipeline_id", "pipeline__name", "pipeline_version", "status", "priority", "username", "action",
        "attempts", "max_attempts", "progress", "created_at", "duration_ms", "error_message",
    )  # fmt: skip

    def get_queryset(self, request, exclude_parameters=None):
        return super().get_queryset(request, exclude_parameters).only(*self.LIST_FIELDS)


# --- List filters: each applies its part of jobs.dashboard.JobCriteria ------------------


class CriteriaFilter(admin.SimpleListFilter):
    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        try:
            return dashboard.JobCriteria.from_params({self.parameter_name: self.value()}).apply(queryset)
        except ValueError as exc:
            raise IncorrectLookupParameters(exc) from exc


class StatusFilter(CriteriaFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        groups = [
            ("running", "Running (queued, processing)"),
            ("active", "Active (not finished)"),
            ("completed", "Completed"),
            ("failed", "Failed"),
        ]
        exact = [(s.value, f"· {s.label}") for s in JobStatus if s.value not in ("completed", "failed")]
        return groups + exact


class CreatedFilter(CriteriaFilter):
    title = "created"
    parameter_name = "created"

    def lookups(self, request, model_admin):
        return list(dashboard.CREATED_PERIODS.items())


class PipelineFilter(CriteriaFilter):
    title = "pipeline"
    parameter_name = "pipeline"

    def lookups(self, request, model_admin):
        from pipelines.models import Pipeline

        return [(name, name) for name in Pipeline.objects.order_by("name").values_list("name", flat=True)]


class WorkerFilter(CriteriaFilter):
    title = "worker"
    parameter_name = "worker"

    def lookups(self, request, model_admin):
        recent = WorkerProcess.objects.filter(last_seen_at__gte=timezone.now() - timedelta(days=1))
        choices = [(w.worker_id, w.worker_id) for w in recent.order_by("worker_id")[:30]]
        if self.value() and self.value() not in dict(choices):
            choices.append((self.value(), self.value()))
        return choices


class HasErrorFilter(CriteriaFilter):
    title = "has error"
    parameter_name = "has_error"

    def lookups(self, request, model_admin):
        return [("yes", "Yes"), ("no", "No")]


class ErrorGroupFilter(CriteriaFilter):
    """Set by the failure triage page's links; shown only while it is active."""

    title = "error group"
    parameter_name = "error"

    def lookups(self, request, model_admin):
        return [(self.value(), self.value()[:80])] if self.value() else []

    def has_output(self):
        return bool(self.value())


class InputFilter(CriteriaFilter):
    """An exact-match text box (the values are too many to list)."""

    template = "admin/jobs/input_filter.html"

    def lookups(self, request, model_admin):
        return []

    def has_output(self):
        return True

    def choices(self, changelist):
        # The form keeps every other parameter of the list and drops the page number.
        others = {k: v for k, v in changelist.get_filters_params().items() if k != self.parameter_name}
        for key in ("q", "o", PER_PAGE_VAR):
            if key in changelist.params:
                others[key] = [changelist.params[key]]
        yield {
            "name": self.parameter_name,
            "value": self.value() or "",
            "hidden": [(key, value) for key, values in others.items() for value in values],
            "clear_url": changelist.get_query_string(remove=[self.parameter_name, "p"]),
        }


class UsernameFilter(InputFilter):
    title = "username"
    parameter_name = "username"


class ActionFilter(InputFilter):
    title = "action"
    parameter_name = "action"


# --- The job list and the job page --------------------------------------------------------


def _column(name: str, description: str, ordering: str | None = None):
    """A column of the job list: its header and sort field; its cell comes from `_safe_cell(name, job)`."""

    def cell(self, obj):
        return _safe_cell(name, obj)

    cell.__name__ = name
    return admin.display(description=description, ordering=ordering)(cell)


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = [
        "short_id",
        "pipeline_shown",
        "status_shown",
        "priority_shown",
        "username_shown",
        "action_shown",
        "attempts_shown",
        "progress_shown",
        "created",
        "duration",
        "error_shown",
    ]
    list_display_links = ["short_id"]  # rows are rendered by result_rows()
    sortable_by = ["created", "duration", "priority_shown"]
    list_filter = [
        StatusFilter,
        CreatedFilter,
        PipelineFilter,
        UsernameFilter,
        ActionFilter,
        WorkerFilter,
        HasErrorFilter,
        ErrorGroupFilter,
    ]
    list_select_related = ["pipeline"]
    list_per_page = PER_PAGE_CHOICES[0]
    list_max_show_all = 500
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    ordering = ["-created_at", "-id"]
    paginator = EstimatedCountPaginator
    search_fields = ["id"]  # shows the search box; jobs.dashboard.job_search does the matching
    search_help_text = "A full job id (exact), an id prefix, or the start of a username or action (case-sensitive)."
    actions = ["cancel_jobs", "retry_jobs", "retry_jobs_from_start", "requeue_jobs", "delete_jobs"]
    change_list_template = "admin/jobs/job/change_list.html"

    # -- access -------------------------------------------------------------------------

    def get_queryset(self, request):
        return selectors.job_list(user=request.user)

    def get_changelist(self, request, **kwargs):
        return JobChangeList

    def get_search_results(self, request, queryset, search_term):
        return dashboard.job_search(queryset, search_term), False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_cancel_permission(self, request, obj=None):
        return request.user.has_perm("jobs.cancel_job")

    def has_retry_permission(self, request, obj=None):
        return request.user.has_perm("jobs.retry_job")

    def has_requeue_permission(self, request, obj=None):
        # Taking a job from the worker that holds it is recovery's, so the operators': they see every job.
        return request.user.has_perm("jobs.retry_job") and selectors.can_see_all_jobs(request.user)

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def list_criteria(self, request) -> dashboard.JobCriteria:
        """The list's current filter and search as criteria, scoped to the user's own jobs where needed."""
        params = {key: request.GET.get(key, "") for key in dashboard.JobCriteria.PARAMS}
        try:
            criteria = dashboard.JobCriteria.from_params(params)
        except ValueError as exc:
            raise IncorrectLookupParameters(exc) from exc
        if not selectors.can_see_all_jobs(request.user):
            criteria = criteria.narrowed(owner=str(request.user.pk))
        return criteria

    # -- columns (the list's rows are rendered by result_rows(); these name and order them) ------

    short_id = _column("short_id", "id")
    pipeline_shown = _column("pipeline_shown", "pipeline")
    status_shown = _column("status_shown", "status")
    priority_shown = _column("priority_shown", "prio", ordering="priority")
    username_shown = _column("username_shown", "username")
    action_shown = _column("action_shown", "action")
    attempts_shown = _column("attempts_shown", "tries")
    progress_shown = _column("progress_shown", "progress")
    created = _column("created", "created", ordering="created_at")
    duration = _column("duration", "duration", ordering="duration_ms")
    error_shown = _column("error_shown", "error")

    # -- the list -------------------------------------------------------------------------

    def result_rows(self, changelist) -> list:
        """The list's rows as HTML, one string per job.

        The same cells as the admin's own `result_list` (checkbox, the linked
        id, one `field-<name>` cell per column), built here with plain string
        formatting from :data:`JOB_CELLS`, every value escaped there: the stock
        renderer looks every column up and renders a widget per checkbox, about
        a millisecond per row, most of the page's time at 500 rows.
        """
        checkbox = "action_checkbox" in changelist.list_display
        base = reverse("admin:jobs_job_changelist")
        preserved = escape(f"?{changelist.preserved_filters}") if changelist.preserved_filters else ""
        columns = [name for name in changelist.list_display if name not in ("action_checkbox", "short_id")]
        now = timezone.now()
        rows = []
        for job in changelist.result_list:
            html = ""
            if checkbox:
                html += (
                    f'<td class="action-checkbox"><input type="checkbox" name="{admin.helpers.ACTION_CHECKBOX_NAME}"'
                    f' value="{job.pk}" class="action-select"'
                    f' aria-label="Select this object for an action - {escape(str(job))}"></td>'
                )
            html += f'<th class="field-short_id"><a href="{base}{job.pk}/change/{preserved}">'
            html += JOB_CELLS["short_id"](job, now) + "</a></th>"
            for name in columns:
                html += f'<td class="field-{name}">{JOB_CELLS[name](job, now)}</td>'
            rows.append(mark_safe(html))  # noqa: S308 - every value is escaped by JOB_CELLS or above
        return rows

    def changelist_view(self, request, extra_context=None):
        extra = {"title": "Jobs", "bulk_operations_url": reverse("admin:jobs_bulkoperation_changelist")}
        return super().changelist_view(request, {**extra, **(extra_context or {})})

    # -- actions ---------------------------------------------------------------------------

    @admin.action(description="Cancel selected jobs", permissions=["cancel"])
    def cancel_jobs(self, request, queryset):
        return self._act(request, queryset, BulkOperationKind.CANCEL)

    @admin.action(description="Retry selected jobs (resume at the failed stage)", permissions=["retry"])
    def retry_jobs(self, request, queryset):
        return self._act(request, queryset, BulkOperationKind.RETRY)

    @admin.action(description="Retry selected jobs from the start", permissions=["retry"])
    def retry_jobs_from_start(self, request, queryset):
        return self._act(request, queryset, BulkOperationKind.RETRY_FROM_START)

    @admin.action(description="Requeue selected stuck jobs", permissions=["requeue"])
    def requeue_jobs(self, request, queryset):
        return self._act(request, queryset, BulkOperationKind.REQUEUE)

    @admin.action(description="Delete selected jobs", permissions=["delete"])
    def delete_jobs(self, request, queryset):
        if request.POST.get("post") != "yes":
            return self._confirm(request, queryset, BulkOperationKind.DELETE)
        return self._act(request, queryset, BulkOperationKind.DELETE)

    def _confirm(self, request, queryset, kind):
        across = request.POST.get("select_across") == "1"
        selected = request.POST.getlist(admin.helpers.ACTION_CHECKBOX_NAME)
        count, estimated = bounded_count(queryset) if across else (len(selected), False)
        context = {
            **self.admin_site.each_context(request),
            "title": "Are you sure?",
            "opts": self.opts,
            "kind": kind,
            "action": request.POST.get("action"),
            "across": across,
            "count": count,
            "estimated": estimated,
            "selected": selected,
            "description": self.list_criteria(request).describe(),
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/jobs/job/action_confirmation.html", context)

    def _act(self, request, queryset, kind):
        if request.POST.get("select_across") == "1":
            return self._start_operation(request, kind, self.list_criteria(request))
        ids = [str(pk) for pk in queryset.values_list("pk", flat=True)]
        if len(ids) > SYNC_ACTION_MAX:
            criteria = dashboard.JobCriteria(ids=tuple(ids))
            if not selectors.can_see_all_jobs(request.user):
                criteria = criteria.narrowed(owner=str(request.user.pk))
            return self._start_operation(request, kind, criteria)
        done, skipped = {}, {}
        with admin_context(request):
            for pk in ids:
                try:
                    outcome = bulk.job_act(kind=kind, job_id=pk)
                except JobStateError as exc:
                    skipped[exc.job.status] = skipped.get(exc.job.status, 0) + 1
                except Job.DoesNotExist:
                    skipped["gone"] = skipped.get("gone", 0) + 1
                else:
                    done[outcome] = done.get(outcome, 0) + 1
        label = dict(BulkOperationKind.choices)[kind]
        text = f"{label}: {sum(done.values())} job(s)" + (
            f" ({', '.join(f'{n} {o}' for o, n in sorted(done.items()))})" if done else ""
        )
        if skipped:
            text += f"; skipped {sum(skipped.values())} whose state does not allow it " + (
                f"({', '.join(f'{n} {s}' for s, n in sorted(skipped.items()))})"
            )
        self.message_user(request, text + ".", messages.SUCCESS if done else messages.WARNING)
        return None

    def _start_operation(self, request, kind, criteria):
        with admin_context(request):
            operation = bulk.bulk_operation_start(kind=kind, criteria=criteria, requested_by=request.user)
        url = reverse("admin:jobs_bulkoperation_change", args=[operation.pk])
        self.message_user(
            request,
            format_html(
                "Started in the background: {} over {}. <a href='{}'>Follow its progress</a>.",
                operation.get_kind_display(),
                operation.description,
                url,
            ),
            messages.SUCCESS,
        )
        return HttpResponseRedirect(url)

    # -- the job page ------------------------------------------------------------------------

    def get_urls(self):
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        return [
            path("failures/", self.admin_site.admin_view(self.failures_view), name=f"{prefix}_failures"),
            path("failures/retry/", self.admin_site.admin_view(self.failures_retry), name=f"{prefix}_failures_retry"),
            path("<path:object_id>/act/<str:kind>/", self.admin_site.admin_view(self.act_view), name=f"{prefix}_act"),
            path("<path:object_id>/result/", self.admin_site.admin_view(self.result_view), name=f"{prefix}_result"),
            *super().get_urls(),
        ]

    def allowed_actions(self, request, job) -> list[tuple[str, str, str]]:
        """The actions `request.user` may take on `job` in its state: (kind, label, style)."""
        allowed = []
        if job.status not in TERMINAL_STATUSES and self.has_cancel_permission(request):
            allowed.append((BulkOperationKind.CANCEL, "Cancel", "warn"))
        if job.status in (JobStatus.FAILED, JobStatus.CANCELLED) and self.has_retry_permission(request):
            allowed.append((BulkOperationKind.RETRY, "Retry (resume)", ""))
            allowed.append((BulkOperationKind.RETRY_FROM_START, "Retry from start", ""))
        if job.status not in TERMINAL_STATUSES and self.has_requeue_permission(request):
            allowed.append((BulkOperationKind.REQUEUE, "Requeue", ""))
        if job.status not in RUNNING_STATUSES and self.has_delete_permission(request, job):
            allowed.append((BulkOperationKind.DELETE, "Delete", "bad"))
        return allowed

    def change_view(self, request, object_id, form_url="", extra_context=None):
        """The job as one ledger: summary, actions, wait reasons, timeline, stages, result, audit trail."""
        job = self.get_object(request, unquote(object_id))
        if job is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_view_permission(request, job):
            raise PermissionDenied
        now = timezone.now()
        user = request.user
        sees_audit = selectors.can_see_all_jobs(user) or user.has_perm("audit.view_auditlog")
        audit_rows = (
            list(
                AuditLog.objects.filter(resource_type="job", resource_id=str(job.pk)).order_by("timestamp", "id")[
                    :AUDIT_TRAIL_MAX
                ]
            )
            if sees_audit
            else []
        )
        ledger = dashboard.job_ledger(job, audit_rows=audit_rows)
        reasons = []
        if job.status not in TERMINAL_STATUSES:
            try:
                depths, broker_error = broker_queue_depths(), ""
            except BrokerConnectionError as exc:
                depths, broker_error = None, str(exc)
            reasons = dashboard.job_wait_reasons(job, depths=depths, broker_error=broker_error, now=now)
        result = JobResult.objects.filter(job=job).first()
        context = {
            **self.admin_site.each_context(request),
            "title": f"Job {job.pk}",
            "subtitle": None,
            "opts": self.opts,
            "original": job,
            "job": job,
            "now": now,
            "ledger": ledger,
            "stage_runs": sorted(ledger["stage_runs"], key=lambda r: (r.index, r.attempt)),
            "wait_reasons": reasons,
            "allowed_actions": self.allowed_actions(request, job),
            "result": result,
            "result_preview": _result_preview(result),
            "audit_rows": audit_rows,
            "audit_log_url": (
                reverse("admin:audit_auditlog_changelist") + f"?resource_type=job&resource_id={job.pk}"
                if user.has_perm("audit.view_auditlog")
                else ""
            ),
            "input_preview": json.dumps(job.input_data, indent=2, sort_keys=True)[:RESULT_PREVIEW_CHARS],
            # Credential header values of the snapshot are masked, as on every other read of a config.
            "config_preview": json.dumps(config_masked(job.pipeline_config), indent=2, sort_keys=True)[
                :RESULT_PREVIEW_CHARS
            ],
            "has_webhook_secret": bool(job.webhook_secret),
            # What the API shows this user of the job's deliveries (every one for operators).
            "webhook_deliveries": list(deliveries_for_job(job.pk, user=user)[:DELIVERIES_MAX]),
            "refresh": job.status not in TERMINAL_STATUSES,
            **(extra_context or {}),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/jobs/job/ledger.html", context)

    def act_view(self, request, object_id, kind):
        """An action button of the job page: the same services as the list's actions."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        job = self.get_object(request, unquote(object_id))
        if job is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if kind == BulkOperationKind.DELETE:
            return HttpResponseRedirect(reverse("admin:jobs_job_delete", args=[job.pk]))
        if kind not in dict((k, label) for k, label, _ in self.allowed_actions(request, job)):
            if kind in BulkOperationKind.values and self._may(request, kind):
                self.message_user(request, f"A {job.status} job cannot take that action.", messages.WARNING)
                return HttpResponseRedirect(reverse("admin:jobs_job_change", args=[job.pk]))
            raise PermissionDenied
        try:
            with admin_context(request):
                outcome = bulk.job_act(kind=kind, job_id=job.pk)
        except JobStateError as exc:
            self.message_user(request, str(exc), messages.WARNING)
        else:
            self.message_user(request, f"{dict(BulkOperationKind.choices)[kind]}: done ({outcome}).", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:jobs_job_change", args=[job.pk]))

    def _may(self, request, kind) -> bool:
        return {
            BulkOperationKind.CANCEL: self.has_cancel_permission,
            BulkOperationKind.RETRY: self.has_retry_permission,
            BulkOperationKind.RETRY_FROM_START: self.has_retry_permission,
            BulkOperationKind.REQUEUE: self.has_requeue_permission,
            BulkOperationKind.DELETE: self.has_delete_permission,
        }[kind](request)

    def result_view(self, request, object_id):
        """Download the job's result as a JSON file."""
        job = self.get_object(request, unquote(object_id))
        result = JobResult.objects.filter(job=job).first() if job else None
        if result is None:
            raise Http404("This job has no result.")
        filename = f"result-{job.pk}.json"
        if result.is_file:
            return FileResponse(result.result_file.open("rb"), as_attachment=True, filename=filename)
        response = HttpResponse(json.dumps(result.result, indent=2), content_type="application/json")
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response

    # -- delete (one job): audited, and without listing every stage run ------------------------

    def get_deleted_objects(self, objs, request):
        jobs = list(objs)
        runs = StageRun.objects.filter(job__in=jobs).count()
        summary = [f"Job {job.pk} ({job.status})" for job in jobs]
        if runs:
            summary.append(f"{runs} stage run(s), the job's events and its result")
        return summary, {"jobs": len(jobs)}, set(), []

    def delete_view(self, request, object_id, extra_context=None):
        job = self.get_object(request, unquote(object_id))
        if job is not None and job.status in RUNNING_STATUSES:
            self.message_user(request, "A job a worker holds cannot be deleted: cancel it first.", messages.WARNING)
            return HttpResponseRedirect(reverse("admin:jobs_job_change", args=[job.pk]))
        return super().delete_view(request, object_id, extra_context)

    def delete_model(self, request, obj):
        from .operations import job_delete

        with admin_context(request):
            job_delete(job_id=obj.pk)

    # -- failure triage ------------------------------------------------------------------------

    def failures_view(self, request):
        """Failed jobs grouped by pipeline and normalised error, with the broker's dead letters per queue."""
        if not selectors.can_see_all_jobs(request.user) or not self.has_view_permission(request):
            raise PermissionDenied
        window = request.GET.get("window") if request.GET.get("window") in dashboard.CREATED_PERIODS else "24h"
        from .snapshots import STORED_FAILURE_PERIODS, stored_failure_groups

        since = dashboard.period_start(window)
        as_of = None
        if window in STORED_FAILURE_PERIODS:
            groups, as_of = stored_failure_groups(period=window)
        else:
            groups = dashboard.failure_groups(since=since)
        list_url = reverse("admin:jobs_job_changelist")
        try:
            depths, broker_error = broker_queue_depths(), ""
        except BrokerConnectionError as exc:
            depths, broker_error = {}, str(exc)
        context = {
            **self.admin_site.each_context(request),
            "title": "Failure triage",
            "opts": self.opts,
            "window": window,
            "periods": dashboard.CREATED_PERIODS,
            "since": since,
            "groups": groups,
            "groups_as_of": as_of,
            "failed_total": sum(g.count for g in groups),
            "list_url": list_url,
            "can_retry": self.has_retry_permission(request),
            "depths": depths,
            "broker_error": broker_error,
            "can_see_dead_letters": request.user.has_perm("broker.view_brokermessage"),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/jobs/job/failures.html", context)

    def failures_retry(self, request):
        """Retry every failed job of one group, as a tracked background operation."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not (selectors.can_see_all_jobs(request.user) and self.has_retry_permission(request)):
            raise PermissionDenied
        window = request.POST.get("window") if request.POST.get("window") in dashboard.CREATED_PERIODS else "24h"
        criteria = dashboard.JobCriteria(
            statuses=(JobStatus.FAILED,),
            created_since=dashboard.period_start(window),
            pipeline=request.POST.get("pipeline", ""),
            error_group=request.POST.get("error", ""),
        )
        kind = BulkOperationKind.RETRY_FROM_START if request.POST.get("from_start") == "1" else BulkOperationKind.RETRY
        return self._start_operation(request, kind, criteria)


def _result_preview(result: JobResult | None) -> dict | None:
    if result is None:
        return None
    if result.is_file:
        try:
            with result.result_file.open("rb") as handle:
                head = handle.read(RESULT_PREVIEW_CHARS).decode(errors="replace")
        except OSError as exc:
            return {"text": f"The result file cannot be read: {exc}", "truncated": False, "file": True}
        return {"text": head, "truncated": result.size_bytes > RESULT_PREVIEW_CHARS, "file": True}
    if result.size_bytes > RESULT_PRETTY_MAX_BYTES:
        text = json.dumps(result.result)[:RESULT_PREVIEW_CHARS]
    else:
        text = json.dumps(result.result, indent=2, sort_keys=True, ensure_ascii=False)
    return {"text": text[:RESULT_PREVIEW_CHARS], "truncated": len(text) > RESULT_PREVIEW_CHARS, "file": False}


# --- Stage runs and results ------------------------------------------------------------------


class OwnJobsMixin:
    """Rows of jobs the user may see: every job's for operators and auditors, their own otherwise."""

    job_field = "job"

    def get_queryset(self, request):
        rows = super().get_queryset(request)
        if selectors.can_see_all_jobs(request.user):
            return rows
        return rows.filter(**{f"{self.job_field}__user_id": request.user.pk})

    def get_search_results(self, request, queryset, search_term):
        """A full job id finds that job's rows; anything else finds nothing."""
        import uuid

        term = search_term.strip()
        if not term:
            return queryset, False
        try:
            return queryset.filter(**{f"{self.job_field}_id": uuid.UUID(term)}), False
        except ValueError:
            return queryset.none(), False

    @admin.display(description="job")
    def job_link(self, obj):
        url = reverse("admin:jobs_job_change", args=[obj.job_id])
        return format_html('<a href="{}"><code title="{}">{}</code></a>', url, obj.job_id, str(obj.job_id)[:8])


@admin.register(StageRun)
class StageRunAdmin(ReadOnlyAdminMixin, OwnJobsMixin, admin.ModelAdmin):
    list_display = [
        "job_link",
        "index",
        "name",
        "stage_type",
        "status_shown",
        "attempt",
        "job_attempt",
        "started_at",
        "took",
    ]
    list_filter = ["status"]
    search_fields = ["job__id"]
    search_help_text = "A full job id."
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    paginator = EstimatedCountPaginator
    list_per_page = 50
    ordering = ["-started_at", "-id"]

    @admin.display(description="status")
    def status_shown(self, obj):
        return status_badge(obj.status)

    @admin.display(description="duration", ordering="duration_ms")
    def took(self, obj):
        return duration(obj.duration_ms)


@admin.register(JobResult)
class JobResultAdmin(ReadOnlyAdminMixin, OwnJobsMixin, admin.ModelAdmin):
    list_display = ["job_link", "size_bytes", "stored_as", "processing_time", "created_at", "expires_at", "download"]
    search_fields = ["job__id"]
    search_help_text = "A full job id."
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    paginator = EstimatedCountPaginator
    ordering = ["-created_at"]
    exclude = ["result"]
    readonly_fields = [
        "job_link",
        "size_bytes",
        "checksum",
        "content_type",
        "processing_time",
        "created_at",
        "expires_at",
        "download",
    ]

    @admin.display(description="stored as")
    def stored_as(self, obj):
        return "file" if obj.is_file else "inline"

    @admin.display(description="processing time", ordering="processing_time_ms")
    def processing_time(self, obj):
        return duration(obj.processing_time_ms)

    @admin.display(description="download")
    def download(self, obj):
        url = reverse("admin:jobs_job_result", args=[obj.job_id])
        return format_html('<a href="{}">JSON</a>', url)


# --- Workers -----------------------------------------------------------------------------------


class WorkerStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("alive", "Alive"), ("stale", "Stale (silent, not stopped)"), ("stopped", "Stopped")]

    def queryset(self, request, queryset):
        from django.conf import settings

        fresh = timezone.now() - timedelta(seconds=settings.WORKER_DEAD_AFTER_SECONDS)
        if self.value() == "alive":
            return queryset.filter(stopped_at__isnull=True, last_seen_at__gte=fresh)
        if self.value() == "stale":
            return queryset.filter(stopped_at__isnull=True, last_seen_at__lt=fresh)
        if self.value() == "stopped":
            return queryset.filter(stopped_at__isnull=False)
        return queryset


@admin.register(WorkerProcess)
class WorkerProcessAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Each worker process with the jobs it holds now and what it finished in the last hour."""

    list_display = [
        "worker_id",
        "state",
        "hostname",
        "pid",
        "queue_names",
        "threads",
        "started",
        "last_heartbeat",
        "held_now",
        "finished_last_hour",
    ]
    list_filter = [WorkerStateFilter]
    show_facets = admin.ShowFacets.NEVER
    search_fields = ["^worker_id", "^hostname"]
    ordering = ["-last_seen_at"]
    fields = [
        "worker_id",
        "state",
        "hostname",
        "pid",
        "queue_names",
        "threads",
        "started",
        "last_heartbeat",
        "stopped_at",
        "held_jobs",
        "finished_last_hour",
    ]
    readonly_fields = fields
    change_list_template = "admin/jobs/workerprocess/change_list.html"

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, {"title": "Workers", **(extra_context or {})})

    def get_changelist_instance(self, request):
        changelist = super().get_changelist_instance(request)
        workers = list(changelist.result_list)  # evaluated once; the template reads this cache
        activity = dashboard.worker_activity([w.worker_id for w in workers])
        for worker in workers:
            worker.activity = activity[worker.worker_id]
        return changelist

    def _activity(self, obj):
        if not hasattr(obj, "activity"):
            obj.activity = dashboard.worker_activity([obj.worker_id])[obj.worker_id]
        return obj.activity

    @admin.display(description="state")
    def state(self, obj):
        return status_badge(dashboard.worker_state(obj))

    @admin.display(description="queues")
    def queue_names(self, obj):
        return format_html("<small>{}</small>", ", ".join(obj.queues or []))

    @admin.display(description="started", ordering="started_at")
    def started(self, obj):
        return relative(obj.started_at)

    @admin.display(description="heartbeat", ordering="last_seen_at")
    def last_heartbeat(self, obj):
        return relative(obj.last_seen_at)

    @admin.display(description="held now")
    def held_now(self, obj):
        held = self._activity(obj)["held"]
        url = reverse("admin:jobs_job_changelist") + "?" + _query({"worker": obj.worker_id, "status": "active"})
        return format_html('<a href="{}">{}</a>', url, held)

    @admin.display(description="last hour")
    def finished_last_hour(self, obj):
        activity = self._activity(obj)
        return format_html(
            '<span title="{} completed and {} failed in the last hour"><span class="js-ok">{}</span> / '
            '<span class="js-bad">{}</span></span>',
            activity["completed"],
            activity["failed"],
            activity["completed"],
            activity["failed"],
        )

    @admin.display(description="jobs held now")
    def held_jobs(self, obj):
        jobs = list(dashboard.jobs_held_by(obj.worker_id)[:100])
        if not jobs:
            return "none"
        return format_html(
            "<ul>{}</ul>",
            format_html_join(
                "",
                '<li><a href="{}"><code>{}</code></a> {} {} since {}</li>',
                (
                    (
                        reverse("admin:jobs_job_change", args=[j.pk]),
                        str(j.pk)[:8],
                        j.pipeline.name,
                        status_badge(j.status),
                        relative(j.locked_at),
                    )
                    for j in jobs
                ),
            ),
        )


def _query(params: dict) -> str:
    from urllib.parse import urlencode

    return urlencode(params)


# --- Bulk operations ------------------------------------------------------------------------------


@admin.register(BulkOperation)
class BulkOperationAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Background operations started from the job list or failure triage, with their progress."""

    list_display = [
        "created_at",
        "kind",
        "description",
        "status_shown",
        "progress",
        "total",
        "done",
        "succeeded",
        "skipped",
        "failed",
        "requested_by",
        "finished_at",
    ]
    list_filter = ["status", "kind"]
    show_facets = admin.ShowFacets.NEVER
    list_select_related = ["requested_by"]
    show_full_result_count = False
    fields = [
        "kind",
        "description",
        "status_shown",
        "progress",
        "total",
        "done",
        "succeeded",
        "skipped",
        "failed",
        "outcome",
        "requested_by",
        "created_at",
        "started_at",
        "finished_at",
        "criteria_shown",
    ]
    readonly_fields = fields
    change_form_template = "admin/jobs/bulkoperation/change_form.html"

    def get_urls(self):
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        return [
            path("<path:object_id>/stop/", self.admin_site.admin_view(self.stop_view), name=f"{prefix}_stop"),
            *super().get_urls(),
        ]

    def get_queryset(self, request):
        operations = super().get_queryset(request)
        if selectors.can_see_all_jobs(request.user):
            return operations
        return operations.filter(requested_by=request.user)

    @admin.display(description="status")
    def status_shown(self, obj):
        return status_badge(obj.status, obj.get_status_display())

    @admin.display(description="progress")
    def progress(self, obj):
        return format_html(
            '<span class="js-progress wide" title="{} %"><span style="width:{}%"></span></span> {} %',
            obj.percent,
            obj.percent,
            obj.percent,
        )

    @admin.display(description="outcome")
    def outcome(self, obj):
        summary = obj.summary or {}
        parts = [f"{n} {o}" for o, n in sorted(summary.get("outcomes", {}).items())]
        parts += [f"{n} skipped ({s})" for s, n in sorted(summary.get("skipped_by_status", {}).items())]
        errors = summary.get("errors", [])
        return format_html(
            "{}{}",
            ", ".join(parts) or NONE,
            format_html_join("", "<br><code>{}</code>: {}", ((e["job"][:8], e["error"]) for e in errors)),
        )

    @admin.display(description="filter")
    def criteria_shown(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(obj.criteria, indent=2, sort_keys=True))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        operation = self.get_object(request, unquote(object_id))
        extra = {
            "refresh": operation is not None and not operation.is_finished,
            "can_stop": operation is not None
            and not operation.is_finished
            and request.user.has_perm("jobs.change_bulkoperation"),
        }
        return super().change_view(request, object_id, form_url, {**extra, **(extra_context or {})})

    def stop_view(self, request, object_id):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        operation = self.get_object(request, unquote(object_id))
        if operation is None:
            raise Http404
        if not request.user.has_perm("jobs.change_bulkoperation"):
            raise PermissionDenied
        with admin_context(request):
            bulk.bulk_operation_stop(operation_id=operation.pk)
        self.message_user(request, "Asked the operation to stop.", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:jobs_bulkoperation_change", args=[operation.pk]))
