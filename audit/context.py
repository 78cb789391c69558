"""Where an operation comes from: an API request, the admin, or a command.

The audit middleware, the admin and management commands open a context; the
services that record audit rows read it, so a service needs no request object.
"""

from __future__ import annotations

import contextvars
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

_current: contextvars.ContextVar[AuditContext | None] = contextvars.ContextVar("audit_context", default=None)


@dataclass
class AuditContext:
    """The source of the operations being performed.

    `source` is "api", "admin", "command" or "system"; `name` is the command's
    name for commands. `request` is the Django request for "api" and "admin".
    """

    source: str
    name: str = ""
    request: Any = None
    user: Any = None
    written: list[int] = field(default_factory=list)

    def action(self, app: str, entity: str, verb: str) -> str:
        """Name an action the way the audit log does for this source."""
        if self.source == "admin":
            return f"admin.{entity}.{verb}"
        if self.source == "command":
            return f"command.{self.name}.{verb}"
        return f"{app}.{entity}.{verb}"


SYSTEM = AuditContext(source="system", name="worker")


def current_context() -> AuditContext:
    """The open context, or the system context (workers, shells) when none is."""
    return _current.get() or SYSTEM


@contextmanager
def audit_context(context: AuditContext):
    """Make `context` the source of everything recorded inside the block."""
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)


def command_context(name: str):
    """The context of a management command named `name`."""
    return audit_context(AuditContext(source="command", name=name))


def admin_context(request):
    """The context of an admin action taken by `request.user`.

    Inside an admin context already open for the same request, that context is
    kept, so that its caller sees the rows written within.
    """
    current = _current.get()
    if current is not None and current.source == "admin" and current.request is request:
        return nullcontext(current)
    return audit_context(AuditContext(source="admin", request=request, user=request.user))
