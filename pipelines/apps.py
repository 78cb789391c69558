from django.apps import AppConfig


class PipelinesConfig(AppConfig):
    name = "pipelines"
    verbose_name = "Pipelines"

    def ready(self):
        # Built-in stage types register themselves on import.
        from . import stages  # noqa: F401
