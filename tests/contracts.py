"""Contract facts that the tests of several surfaces assert, stated once and apart from the code they check."""

# The LLM workflow service's JobSummary (seed 001), in its order.
SEED_JOB_SUMMARY = [
    "job_id",
    "workflow_name",
    "status",
    "priority",
    "user_id",
    "username",
    "action",
    "created_at",
    "started_at",
    "completed_at",
    "duration_ms",
    "error_message",
]
# What jobsite's job summaries add to it (its own API and the seed surfaces alike).
JOBSITE_SUMMARY_EXTRAS = {"pipeline_version", "progress", "attempts", "max_attempts", "queued_at"}
