"""API-key scopes: operation names and the Django permissions each one covers."""

SCOPE_PERMISSIONS: dict[str, frozenset[str]] = {
    "jobs:create": frozenset({"jobs.add_job"}),
    "jobs:read": frozenset({"jobs.view_job", "jobs.view_all_jobs"}),
    "jobs:cancel": frozenset({"jobs.cancel_job"}),
    "jobs:retry": frozenset({"jobs.retry_job"}),
    "pipelines:read": frozenset({"pipelines.view_pipeline"}),  # full configs; the outline needs no scope
    "pipelines:write": frozenset({"pipelines.add_pipeline", "pipelines.change_pipeline", "pipelines.delete_pipeline"}),
    "webhooks:read": frozenset(
        {"webhooks.view_webhooksubscription", "webhooks.view_webhookdelivery", "webhooks.manage_all_webhooks"}
    ),
    "webhooks:write": frozenset(
        {
            "webhooks.add_webhooksubscription",
            "webhooks.change_webhooksubscription",
            "webhooks.delete_webhooksubscription",
            "webhooks.redeliver_webhookdelivery",
            "webhooks.manage_all_webhooks",
        }
    ),
    "audit:read": frozenset({"audit.view_auditlog"}),
}

# The name keys were given before webhooks:read and webhooks:write: both.
SCOPE_PERMISSIONS["webhooks:manage"] = SCOPE_PERMISSIONS["webhooks:read"] | SCOPE_PERMISSIONS["webhooks:write"]

SCOPES = tuple(SCOPE_PERMISSIONS)


def scopes_allow(scopes: list[str] | None, perm: str) -> bool:
    """Tell whether a key with these scopes may use permission `perm` (no scopes = no limit)."""
    if not scopes:
        return True
    return any(perm in SCOPE_PERMISSIONS.get(scope, ()) for scope in scopes)
