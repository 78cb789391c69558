from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "jobs"
    verbose_name = "Jobs"

    def ready(self):
        # Declare the actors (and so their queues) on the broker in every process,
        # not only in workers, so that depths and health checks see the queues.
        from . import actors, bulk, snapshots  # noqa: F401
