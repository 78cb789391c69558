"""Permission checks: Django permissions per operation, narrowed by API-key scopes."""

from rest_framework.permissions import BasePermission

from accounts.models import ApiKey
from accounts.scopes import scopes_allow

from .authentication import is_service


def principal_has_perm(request, perm: str) -> bool:
    """Tell whether the caller may use `perm`: the service may do anything; a user
    needs the Django permission, and a key's scopes must cover it too."""
    user = request.user
    if is_service(user):
        return True
    if not (user and user.is_authenticated and user.has_perm(perm)):
        return False
    if isinstance(request.auth, ApiKey):
        return scopes_allow(request.auth.scopes, perm)
    return True


class OperationPermission(BasePermission):
    """Require the permission the view names for the current action.

    Views set `operation_permissions = {"list": "jobs.view_job", ...}`; an
    action missing from the map needs only an authenticated caller.
    """

    message = "You do not have permission to perform this operation."

    def has_permission(self, request, view):
        if not (request.user and request.user.is_authenticated):
            return False
        perm = getattr(view, "operation_permissions", {}).get(getattr(view, "action", None))
        return perm is None or principal_has_perm(request, perm)
