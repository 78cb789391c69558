"""The admin site: the operators' queue dashboard as its index, the stock app list beside it,
and the broker's dead letters.

`JobsiteAdminConfig` replaces `django.contrib.admin` in INSTALLED_APPS so that
`admin.site` (and every `@admin.register`) is this site.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.contrib import messages
from django.contrib.admin.apps import AdminConfig
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from dramatiq.errors import BrokerConnectionError

from audit.admin_site import AuditedAdminSite

logger = logging.getLogger(__name__)

DASHBOARD_PERMISSION = "jobs.view_all_jobs"
DASHBOARD_WINDOWS = ("1h", "24h", "7d")


def can_see_dashboard(user) -> bool:
    """The dashboard shows every job's numbers: for those who may see every job (operators, auditors)."""
    return user.is_active and user.is_staff and user.has_perm(DASHBOARD_PERMISSION)


def can_see_dead_letters(user) -> bool:
    return user.is_active and user.is_staff and user.has_perm("broker.view_brokermessage")


class JobsiteAdminSite(AuditedAdminSite):
    site_header = "jobsite operations"
    site_title = "jobsite admin"
    index_title = "Queue dashboard"
    index_template = None

    def get_urls(self):
        return [
            path("models/", self.admin_view(self.models_view), name="models"),
            path("dead-letters/", self.admin_view(self.dead_letters_view), name="dead_letters"),
            path(
                "dead-letters/<str:queue>/<str:operation>/",
                self.admin_view(self.dead_letters_act),
                name="dead_letters_act",
            ),
            *super().get_urls(),
        ]

    # -- the index -----------------------------------------------------------------

    def index(self, request, extra_context=None):
        """The queue dashboard for those who may see every job; the stock app list for everyone else."""
        if not can_see_dashboard(request.user):
            return super().index(request, extra_context)
        context = {
            **self.each_context(request),
            "title": self.index_title,
            "subtitle": None,
            **dashboard_context(request),
            **(extra_context or {}),
        }
        request.current_app = self.name
        return TemplateResponse(request, "admin/jobsite/dashboard.html", context)

    def models_view(self, request):
        """The stock admin index: every app and model the user may open."""
        return super().index(request, {"title": "Site administration"})

    # Shorter, or correctly pluralised, names for the app list than the models' verbose names.
    MODEL_NAMES = {("jobs", "WorkerProcess"): "Workers"}

    def get_app_list(self, request, app_label=None):
        apps = super().get_app_list(request, app_label)
        for app in apps:
            for model in app["models"]:
                model["name"] = self.MODEL_NAMES.get((app["app_label"], model["object_name"]), model["name"])
        if app_label is not None:
            return apps
        links = []
        if can_see_dashboard(request.user):
            links.append(("Dashboard", reverse("admin:index", current_app=self.name)))
            links.append(("Failure triage", reverse("admin:jobs_job_failures", current_app=self.name)))
        if can_see_dead_letters(request.user):
            links.append(("Dead letters", reverse("admin:dead_letters", current_app=self.name)))
        links.append(("All models", reverse("admin:models", current_app=self.name)))
        operations = {
            "name": "Operations",
            "app_label": "operations",
            "app_url": reverse("admin:index", current_app=self.name),
            "has_module_perms": True,
            "models": [
                {
                    "name": name,
                    "object_name": name.replace(" ", ""),
                    "perms": {"view": True},
                    "admin_url": url,
                    "add_url": None,
                    "view_only": True,
                }
                for name, url in links
            ],
        }
        return [operations, *apps]

    # -- dead letters ----------------------------------------------------------------

    def dead_letters_view(self, request):
        """Dead-lettered messages of every queue of the configured broker."""
        from jobsite.broker import dead_letters

        if not can_see_dead_letters(request.user):
            raise PermissionDenied
        queues, error = [], ""
        try:
            for queue in dead_letters.dead_letter_queues():
                queues.append({"name": queue, "messages": dead_letters.dead_letters(queue=queue)})
        except BrokerConnectionError as exc:
            error = str(exc)
        context = {
            **self.each_context(request),
            "title": "Dead letters",
            "queues": queues,
            "broker_error": error,
            "broker_name": type(_broker()).__name__,
            "can_requeue": request.user.has_perm("broker.change_brokermessage"),
            "can_purge": request.user.has_perm("broker.delete_brokermessage"),
            "list_limit": dead_letters.LIST_LIMIT,
        }
        request.current_app = self.name
        return TemplateResponse(request, "admin/jobsite/dead_letters.html", context)

    def dead_letters_act(self, request, queue, operation):
        """Requeue or purge one queue's dead letters: the posted `message_id`s, or all of them."""
        from audit.context import admin_context
        from jobsite.broker import dead_letters

        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        needed = {"requeue": "broker.change_brokermessage", "purge": "broker.delete_brokermessage"}.get(operation)
        if needed is None or queue not in dead_letters.dead_letter_queues():
            return HttpResponseRedirect(reverse("admin:dead_letters", current_app=self.name))
        if not request.user.has_perm(needed):
            raise PermissionDenied
        ids = request.POST.getlist("message_id") or None
        act = dead_letters.dead_letters_requeue if operation == "requeue" else dead_letters.dead_letters_purge
        try:
            with admin_context(request):
                count = act(queue=queue, message_ids=ids)
        except BrokerConnectionError as exc:
            messages.error(request, f"The broker is unreachable: {exc}")
        else:
            done = "requeued" if operation == "requeue" else "purged"
            messages.success(request, f"{count} dead letter(s) of queue {queue} {done}.")
        return HttpResponseRedirect(reverse("admin:dead_letters", current_app=self.name))


def _broker():
    import dramatiq

    return dramatiq.get_broker()


def dashboard_context(request) -> dict:
    """Everything the dashboard shows, from the selectors behind /api/v1/jobs/stats/ and /health/queue."""
    from jobs import dashboard, selectors
    from jobs.models import BulkOperation, Job
    from jobs.snapshots import dashboard_snapshot
    from jobs.stats import job_stats
    from jobsite.broker.depth import broker_queue_depths

    now = timezone.now()
    window = request.GET.get("window") if request.GET.get("window") in DASHBOARD_WINDOWS else "24h"
    try:
        depths, broker_error = broker_queue_depths(), ""
    except BrokerConnectionError as exc:
        depths, broker_error = {}, str(exc)
    jobs = Job.objects.all()
    snapshot, snapshot_at = dashboard_snapshot(now=now)
    stats = {w: job_stats(jobs=jobs, window=w, now=now) for w in DASHBOARD_WINDOWS if w != "7d"}
    stats["7d"] = snapshot["stats_7d"]
    live = list(selectors.live_workers(now=now))
    oldest = selectors.oldest_waiting_job()
    return {
        "now": now,
        "window": window,
        "windows": DASHBOARD_WINDOWS,
        "depths": depths,
        "broker_error": broker_error,
        "broker_name": type(_broker()).__name__,
        "stats": stats[window],
        "groups": dashboard.group_counts(stats[window]["counts"]),
        "created_period": window,
        "now_counts": dashboard.status_counts_now(jobs),
        "pipeline_rows": dashboard.pipeline_table(stats),
        "processed": {
            "last_minute": selectors.jobs_finished_since(now - timedelta(minutes=1)),
            "last_hour": selectors.jobs_finished_since(now - timedelta(hours=1)),
        },
        "oldest_waiting": oldest,
        "oldest_waiting_age": (now - oldest.created_at) if oldest else None,
        "live_workers": live,
        "live_threads": sum(w.threads for w in live),
        "stale_workers": list(dashboard.stale_workers(now=now)[:20]),
        "throughput": dashboard.throughput_per_minute(now=now),
        "history": dashboard.daily_history(now=now, closed=snapshot["closed_days"]),
        "snapshot_at": snapshot_at,
        "top_failures": dashboard.failure_groups(since=now - timedelta(hours=24), limit=5),
        "bulk_operations": list(BulkOperation.objects.select_related("requested_by").order_by("-created_at")[:5]),
        "can_see_dead_letters": can_see_dead_letters(request.user),
    }


class JobsiteAdminConfig(AdminConfig):
    default_site = "jobsite.admin_site.JobsiteAdminSite"
