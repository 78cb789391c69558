"""A stage type the observability tests register in their worker processes (JOBSITE_STAGE_MODULES)."""

from pipelines.registry import stage


class Refused(Exception):
    retryable = False


@stage("obs_fail", isolated=False)
def obs_fail(ctx):
    """Fails at once, for good."""
    raise Refused("this stage always fails")


@stage("obs_flaky", isolated=False)
def obs_flaky(ctx):
    """Fails every time with an error that may pass: its retries apply."""
    raise ConnectionError("the upstream did not answer")


@stage("obs_cancel_own_job", isolated=False)
def obs_cancel_own_job(ctx):
    """Asks for its own job's cancellation, as a client would while it runs."""
    from jobs.models import Job, JobStatus

    Job.objects.filter(pk=ctx.job_id).update(status=JobStatus.CANCELLING)
    return ctx.previous
