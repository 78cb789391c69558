"""The roles jobsite ships with: Django groups and the permissions each one holds."""

ROLE_PERMISSIONS: dict[str, list[str]] = {
    # A submitter cancels and retries its own jobs only: the job lookups are scoped to the caller.
    "submitter": ["jobs.add_job", "jobs.view_job", "jobs.cancel_job", "jobs.retry_job"],
    "operator": [
        "jobs.add_job",
        "jobs.view_job",
        "jobs.view_all_jobs",
        "jobs.cancel_job",
        "jobs.retry_job",
        "pipelines.view_pipeline",  # pipeline configs with their stage params; others see only the outline
        "pipelines.add_pipeline",
        "pipelines.change_pipeline",
        "pipelines.delete_pipeline",
    ],
    "auditor": ["audit.view_auditlog"],
}

# Webhooks: submitters manage their own subscriptions and see their deliveries; operators everyone's.
WEBHOOK_PERMISSIONS = [
    "webhooks.view_webhooksubscription",
    "webhooks.add_webhooksubscription",
    "webhooks.change_webhooksubscription",
    "webhooks.delete_webhooksubscription",
    "webhooks.view_webhookdelivery",
    "webhooks.redeliver_webhookdelivery",
]
ROLE_PERMISSIONS["submitter"] += WEBHOOK_PERMISSIONS
ROLE_PERMISSIONS["operator"] += [*WEBHOOK_PERMISSIONS, "webhooks.manage_all_webhooks"]


def sync_role_permissions(apps, roles: dict[str, list[str]]) -> None:
    """Create the groups and grant them their permissions (used by data migrations)."""
    from django.contrib.auth.management import create_permissions

    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    for role, perms in roles.items():
        group, _ = group_model.objects.get_or_create(name=role)
        for perm in perms:
            app_label, codename = perm.split(".")
            group.permissions.add(permission_model.objects.get(content_type__app_label=app_label, codename=codename))


# The admin dashboard (jobs migration 0008 grants these): operators run the queue
# from the admin (stage runs, results, workers, broker messages, bulk operations,
# deleting jobs); auditors read all of it and act on nothing.
ROLE_PERMISSIONS["operator"] += [
    "jobs.delete_job",
    "jobs.view_stagerun",
    "jobs.view_jobresult",
    "jobs.view_workerprocess",
    "jobs.view_bulkoperation",
    "jobs.change_bulkoperation",
    "broker.view_brokermessage",
    "broker.change_brokermessage",
    "broker.delete_brokermessage",
]
ROLE_PERMISSIONS["auditor"] += [
    "jobs.view_job",
    "jobs.view_all_jobs",
    "jobs.view_stagerun",
    "jobs.view_jobresult",
    "jobs.view_workerprocess",
    "jobs.view_bulkoperation",
    "broker.view_brokermessage",
]
