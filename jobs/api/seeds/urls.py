"""The seeds' routes, at the paths their clients call.

`llm_workflow_patterns` go under `/api/v1/` (with or without the trailing
slash, as every `/api/` path); `task_patterns` at `/tasks` and again under
`/api/v1/tasks/`; `starter_patterns` at `/jobs`. The unprefixed paths answer
with or without a trailing slash; the OpenAPI schema documents each once, as
its contract spells it.
Every view is named `job` for the audit log (`jobs.job.list`, ...), like
jobsite's own job endpoints.
"""

from django.urls import path, re_path
from drf_spectacular.utils import extend_schema

from .llm_workflow import LlmWorkflowViewSet
from .starter import StarterJobViewSet
from .tasks import TaskViewSet


def _view(viewset, actions: dict[str, str]):
    return viewset.as_view(actions, basename="job")


llm_workflow_patterns = [
    path("status/<str:job_id>/", _view(LlmWorkflowViewSet, {"get": "retrieve"}), name="llm-workflow-status"),
    path("workflow/", _view(LlmWorkflowViewSet, {"post": "create"}), name="llm-workflow-submit"),
    path("workflow/validate/", _view(LlmWorkflowViewSet, {"post": "validate"}), name="llm-workflow-validate"),
]


def _task_patterns(viewset, *, slash: str, name_prefix: str) -> list:
    """The task API's routes; `stats` before `{task}`, so that it is not taken for a task's id."""
    return [
        re_path(rf"^tasks{slash}$", _view(viewset, {"get": "list"}), name=f"{name_prefix}-list"),
        re_path(rf"^tasks/stats{slash}$", _view(viewset, {"get": "stats"}), name=f"{name_prefix}-stats"),
        re_path(
            rf"^tasks/(?P<task>[^/]+){slash}$",
            _view(viewset, {"get": "retrieve", "post": "create", "delete": "destroy"}),
            name=f"{name_prefix}-detail",
        ),
        re_path(
            rf"^tasks/(?P<task>[^/]+)/batch{slash}$", _view(viewset, {"post": "batch"}), name=f"{name_prefix}-batch"
        ),
        re_path(
            rf"^tasks/(?P<task>[^/]+)/retry{slash}$", _view(viewset, {"patch": "retry"}), name=f"{name_prefix}-retry"
        ),
    ]


def _undocumented(viewset):
    """The same viewset, left out of the OpenAPI schema (for the other spellings of a documented path)."""
    return extend_schema(exclude=True)(type(f"Undocumented{viewset.__name__}", (viewset,), {}))


# The documented paths are the contracts' own (no trailing slash); the slashed ones answer the same.
task_patterns = [
    *_task_patterns(TaskViewSet, slash="", name_prefix="task"),
    *_task_patterns(_undocumented(TaskViewSet), slash="/", name_prefix="task-slash"),
]
task_api_v1_patterns = _task_patterns(_undocumented(TaskViewSet), slash="/", name_prefix="task-api-v1")


def _starter_patterns(viewset, *, slash: str, name_prefix: str) -> list:
    return [
        re_path(rf"^jobs{slash}$", _view(viewset, {"get": "list", "post": "create"}), name=f"{name_prefix}-list"),
        re_path(rf"^jobs/(?P<job_id>[^/]+){slash}$", _view(viewset, {"get": "retrieve"}), name=f"{name_prefix}-detail"),
    ]


starter_patterns = [
    *_starter_patterns(StarterJobViewSet, slash="", name_prefix="starter-job"),
    *_starter_patterns(_undocumented(StarterJobViewSet), slash="/", name_prefix="starter-job-slash"),
]
