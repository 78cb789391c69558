"""Errors of job operations, as every surface (jobsite's own and the seeds') reports them."""

from rest_framework import status

from jobsite.api.errors import ApiError

from .. import services


class IdempotencyKeyReusedError(ApiError):
    def __init__(self, exc: services.IdempotencyKeyReused):
        super().__init__(
            status_code=status.HTTP_422_UNPROCESSABLE_ENTITY,
            code="idempotency_key_reused",
            message="This idempotency key was used before for a different submission.",
            details={"idempotency_key": exc.job.idempotency_key, "job_id": str(exc.job.pk)},
        )


class JobStateConflict(ApiError):
    def __init__(self, exc: services.JobStateError):
        super().__init__(
            status_code=status.HTTP_409_CONFLICT,
            code="invalid_state",
            message=str(exc),
            details={"status": exc.job.status},
        )
