"""Submitting jobs from a request: what every surface that submits (jobsite's own and the seeds') shares.

A surface validates its body with its own serializer (whose validated data
are `JobSubmission` fields); the caller's rules (only the service principal
files a job under another user), the request's facts and the service's errors
are handled here, once.
"""

from __future__ import annotations

import re

from rest_framework import status
from rest_framework.exceptions import ValidationError

from jobsite.api.authentication import is_service
from jobsite.api.errors import ApiError
from jobsite.api.representation import thread_serializer
from jobsite.observability.tracing import current_traceparent

from .. import services
from ..models import Job
from .errors import IdempotencyKeyReusedError
from .serializers import JobSubmitSerializer

# A W3C trace context header: version-traceid-parentid-flags.
TRACEPARENT = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")


class JobSubmitting:
    """Mixin for views that submit jobs (`self.request` is the DRF request)."""

    submit_serializer_class = JobSubmitSerializer
    # How this surface names the fields of the service's errors (`pipeline`, `input_data`).
    submit_error_fields: dict[str, str] = {}

    def idempotency_header(self) -> str | None:
        """The `Idempotency-Key` header: absent when empty, a 400 when longer than a key may be."""
        value = self.request.headers.get("Idempotency-Key", "").strip()
        if not value:
            return None
        if len(value) > 255:
            raise ValidationError({"Idempotency-Key": ["Ensure this header has no more than 255 characters."]})
        return value

    def submission(self, body, *, header_key: str | None = None) -> services.JobSubmission:
        """Validate one submission body for the caller; raise ValidationError or a 403.

        The serializer is this thread's (see jobsite.api.representation):
        building its fields is most of what validating costs.
        """
        data = dict(thread_serializer(self.submit_serializer_class).run_validation(body))
        if data.get("idempotency_key") == "":
            data["idempotency_key"] = None
        if header_key is not None:
            if data.get("idempotency_key") not in (None, header_key):
                raise ValidationError({"idempotency_key": ["Differs from the Idempotency-Key header."]})
            data["idempotency_key"] = header_key
        user = self.request.user
        if not is_service(user):
            if data.get("user_id") not in (None, user.pk):
                raise ApiError(
                    status_code=status.HTTP_403_FORBIDDEN,
                    code="permission_denied",
                    message="Only the service principal may submit a job for another user.",
                    details={"user_id": ["Must be your own id or omitted."]},
                )
            data["user_id"] = user.pk
        return services.JobSubmission(**data)

    def submit_context(self) -> services.SubmitContext:
        request = self.request
        traceparent = request.headers.get("traceparent", "")
        return services.SubmitContext(
            created_by=None if is_service(request.user) else request.user,
            request_id=getattr(request._request, "request_id", ""),
            # With tracing on, the job continues this request's span; otherwise the caller's trace as it came.
            traceparent=current_traceparent() or (traceparent if TRACEPARENT.match(traceparent) else ""),
        )

    def submit_errors(self, exc: services.JobSubmitError) -> ValidationError:
        """The service's refusal, its fields named as this surface names them."""
        return ValidationError({self.submit_error_fields.get(field, field): msgs for field, msgs in exc.errors.items()})

    def submit(self, submission: services.JobSubmission) -> Job:
        """Submit one job; the earlier job (`duplicate` True) for a repeated idempotency key."""
        try:
            return services.job_submit(submission=submission, context=self.submit_context())
        except services.JobSubmitError as exc:
            raise self.submit_errors(exc) from exc
        except services.IdempotencyKeyReused as exc:
            raise IdempotencyKeyReusedError(exc) from exc

    def validate_submission(self, submission: services.JobSubmission) -> None:
        """Check a submission against its pipeline without creating anything."""
        try:
            services.job_validate(submission=submission)
        except services.JobSubmitError as exc:
            raise self.submit_errors(exc) from exc
