"""Writing audit rows: by services inside their transactions, and for API requests."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from jobsite.observability import metrics

from .context import AuditContext, current_context
from .models import AuditLog
from .redaction import redact, redact_query, redact_text, storable, summarize_body

logger = logging.getLogger(__name__)

PrincipalType = AuditLog.PrincipalType


def _principal(context: AuditContext) -> dict[str, Any]:
    """Who is acting, from the request's authenticated user and credential."""
    from accounts.models import ApiKey
    from jobsite.api.authentication import is_service

    request = context.request
    user = getattr(request, "user", None) if request is not None else context.user
    auth = getattr(request, "auth", None) if request is not None else None
    if context.source in ("command", "system"):
        return {"principal": f"{context.source}:{context.name}", "principal_type": PrincipalType.SYSTEM, "user": None}
    if is_service(user):
        return {"principal": "service", "principal_type": PrincipalType.SERVICE, "user": None}
    if isinstance(auth, ApiKey):
        return {"principal": f"key:{auth.prefix}", "principal_type": PrincipalType.API_KEY, "user_id": user.pk}
    if user is not None and getattr(user, "is_authenticated", False):
        return {"principal": user.get_username(), "principal_type": PrincipalType.USER, "user_id": user.pk}
    return {"principal": "anonymous", "principal_type": PrincipalType.ANONYMOUS, "user": None}


def _request_facts(request) -> dict[str, Any]:
    if request is None:
        return {}
    details: dict[str, Any] = {
        "method": request.method,
        "path": redact_text(request.path),
        "query": redact_query(dict(request.GET.lists())),
    }
    body = getattr(request, "audit_body", None)
    if body is not None:
        details["body"] = summarize_body(body, getattr(request, "audit_body_size", None))
    return {
        "request_details": details,
        "ip_address": request.META.get("REMOTE_ADDR") or None,
        "user_agent": redact_text(request.headers.get("User-Agent", "")),
        "request_id": getattr(request, "request_id", ""),
    }


def _storable_row(fields: dict[str, Any]) -> dict[str, Any]:
    """Make every value of a row storable: client text escaped (NUL, surrogates) and cut to its column.

    A row is never lost to what a client sent: PostgreSQL would refuse the whole
    insert for one NUL character in a path or body.
    """
    row = {}
    for name, value in fields.items():
        value = storable(value)
        if isinstance(value, str):
            max_length = getattr(AuditLog._meta.get_field(name), "max_length", None)
            value = value[:max_length] if max_length else value
        row[name] = value
    return row


def audit_record(
    *,
    app: str,
    entity: str,
    verb: str,
    resource_id: Any = "",
    success: bool = True,
    error_message: str = "",
    details: dict | None = None,
) -> AuditLog:
    """Record an operation in the current transaction, attributed to the current context.

    Called by services next to the change they make, so the row commits (or
    rolls back) with it.
    """
    context = current_context()
    facts = _request_facts(context.request)
    if details:
        facts.setdefault("request_details", {})["operation"] = redact(details)
    row = AuditLog.objects.create(
        **_storable_row(
            {
                "action": context.action(app, entity, verb),
                "resource_type": entity,
                "resource_id": str(resource_id or ""),
                "success": success,
                "error_message": redact_text(error_message[:2000]),
                **_principal(context),
                **facts,
            }
        )
    )
    context.written.append(row.pk)
    return row


def audit_record_many(*, app: str, entity: str, verb: str, rows: list[tuple[Any, dict | None]]) -> None:
    """Record the same operation on many resources with one multi-row insert, as :func:`audit_record` would.

    Every row carries the request's facts and its `request_id`; only the first
    carries the request body, which the others share through that id (a batch
    body is stored once, not once per job).
    """
    created = AuditLog.objects.bulk_create(audit_entries(app=app, entity=entity, verb=verb, rows=rows))
    audit_written([row.pk for row in created])


def audit_written(row_ids: list[int]) -> None:
    """Note rows inserted for the current request, so the middleware completes them with the response's facts."""
    current_context().written.extend(row_ids)


def audit_entries(*, app: str, entity: str, verb: str, rows: list[tuple[Any, dict | None]]) -> list[AuditLog]:
    """The unsaved rows :func:`audit_record_many` inserts (for a caller that inserts them with its own statement)."""
    if not rows:
        return []
    context = current_context()
    common = {"action": context.action(app, entity, verb), "resource_type": entity, "success": True}
    first = _storable_row({**common, **_principal(context), **_request_facts(context.request)})
    shared = dict(first)
    if "request_details" in shared:
        shared["request_details"] = {k: v for k, v in shared["request_details"].items() if k != "body"}
    objects = []
    for position, (resource_id, details) in enumerate(rows):
        fields = dict(first if position == 0 else shared, resource_id=storable(str(resource_id or ""))[:100])
        if details:
            operation = storable(redact(details))
            fields["request_details"] = {**fields.get("request_details", {}), "operation": operation}
        objects.append(AuditLog(**fields))
    return objects


def audit_request(
    *,
    context: AuditContext,
    action: str,
    resource_type: str,
    resource_id: str,
    status_code: int,
    duration_ms: int,
    error_message: str = "",
) -> None:
    """Record a finished API request, or complete the rows its services wrote.

    Never raises: a failed audit write is logged, and the response, already
    produced, is unaffected.
    """
    try:
        if context.written:
            AuditLog.objects.filter(pk__in=context.written, status_code__isnull=True)._complete_response(
                status_code=status_code, duration_ms=duration_ms
            )
            return
        AuditLog.objects.create(
            **_storable_row(
                {
                    "action": action,
                    "resource_type": resource_type,
                    "resource_id": resource_id,
                    "success": status_code < 400,
                    "status_code": status_code,
                    "duration_ms": duration_ms,
                    "error_message": redact_text(error_message[:2000]),
                    **_principal(context),
                    **_request_facts(context.request),
                }
            )
        )
    except Exception:
        logger.exception("Could not write the audit row for %s %s", action, resource_id)
        metrics.audit_write_failed()


def audit_purge_older_than(*, cutoff: datetime, batch_size: int = 5000, dry_run: bool = False) -> Iterator[int]:
    """Delete rows older than `cutoff` in batches, yielding each batch's size.

    With `dry_run`, nothing is deleted and the yielded counts are what would be.
    """
    old = AuditLog.objects.filter(timestamp__lt=cutoff).order_by("id")
    if dry_run:
        yield old.count()
        return
    while True:
        ids = list(old.values_list("id", flat=True)[:batch_size])
        if not ids:
            return
        yield AuditLog.objects.filter(id__in=ids)._purge()
