"""Every `/api/v1/` route: jobsite's own on one router so the API root lists them all, then the seeds'."""

from django.urls import path
from rest_framework.routers import DefaultRouter

from accounts.api.views import ApiKeyViewSet, LoginView, RefreshView
from audit.api.views import AuditLogViewSet
from jobs.api.seeds.urls import llm_workflow_patterns, task_api_v1_patterns
from jobs.api.views import JobViewSet
from pipelines.api.views import PipelineViewSet, StageTypeViewSet
from webhooks.api.views import WebhookDeliveryViewSet, WebhookSubscriptionViewSet

router = DefaultRouter()
router.register("auth/api-keys", ApiKeyViewSet, basename="api-key")
router.register("jobs", JobViewSet, basename="job")
router.register("audit/logs", AuditLogViewSet, basename="audit-log")
router.register("pipelines", PipelineViewSet, basename="pipeline")
router.register("stages", StageTypeViewSet, basename="stage-type")
router.register("webhooks/deliveries", WebhookDeliveryViewSet, basename="webhook-delivery")
router.register("webhooks", WebhookSubscriptionViewSet, basename="webhook")

urlpatterns = [
    path("auth/login/", LoginView.as_view(), name="auth-login"),
    path("auth/refresh/", RefreshView.as_view(), name="auth-refresh"),
    *router.urls,
    # The LLM workflow service's and the task API's paths (jobs/api/seeds/).
    *llm_workflow_patterns,
    *task_api_v1_patterns,
]
