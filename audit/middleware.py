"""Audit every API request once its response has been sent."""

import time

from jobsite.api.errors import is_api_path

from .context import AuditContext, audit_context
from .services import audit_request

UNAUDITED_PREFIXES = ("/api/schema", "/api/docs", "/api/redoc")


def _operation(request, response) -> tuple[str, str, str]:
    """Name the request's action and resource from its route: (action, type, id)."""
    match = getattr(request, "resolver_match", None)
    if match is None:
        return "api.unknown", "", ""
    view = match.func
    view_class = getattr(view, "cls", None) or getattr(view, "view_class", None)
    app = view_class.__module__.split(".")[0] if view_class else "api"
    basename = (getattr(view, "initkwargs", None) or {}).get("basename")
    actions = getattr(view, "actions", None) or {}
    if basename and actions:
        entity = basename.replace("-", "_")
        verb = actions.get(request.method.lower(), request.method.lower())
        action = f"{app}.{entity}.{verb}"
    else:
        entity = ""
        action = f"{app}.{(match.url_name or 'view').replace('-', '.')}"
    # `pk` on jobsite's routes; the seeds' routes name their id as their contract does (`job_id`, `task`).
    resource_id = match.kwargs.get("pk") or next(iter(match.kwargs.values()), "")
    if not resource_id and response.status_code < 300 and isinstance(getattr(response, "data", None), dict):
        resource_id = response.data.get("id") or response.data.get("job_id") or ""
    return action, entity, str(resource_id)


def _error_message(response) -> str:
    data = getattr(response, "data", None)
    if response.status_code >= 400 and isinstance(data, dict) and "error" in data:
        return f"{data['error']}: {data.get('message', '')}"
    return ""


class AuditMiddleware:
    """Record each API request in the audit log after the client has its response.

    Services that change state write their own rows during the request; for
    those requests the middleware only adds the status code and duration. The
    write happens when the server closes the response, so the client never
    waits for it, and a failed write never turns into an error response.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not is_api_path(request.path) or request.path.startswith(UNAUDITED_PREFIXES):
            return self.get_response(request)
        started = time.monotonic()
        context = AuditContext(source="api", request=request)
        with audit_context(context):
            response = self.get_response(request)
        duration_ms = round((time.monotonic() - started) * 1000)
        action, resource_type, resource_id = _operation(request, response)
        error_message = _error_message(response)
        status_code = response.status_code

        def record():
            audit_request(
                context=context,
                action=action,
                resource_type=resource_type,
                resource_id=resource_id,
                status_code=status_code,
                duration_ms=duration_ms,
                error_message=error_message,
            )

        response._resource_closers.append(record)
        return response
