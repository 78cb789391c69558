from importlib import import_module

from django.apps import AppConfig
from django.conf import settings


class PipelinesConfig(AppConfig):
    name = "pipelines"
    verbose_name = "Pipelines"

    def ready(self):
        # Built-in stage types register themselves on import; so do the modules
        # named in JOBSITE_STAGE_MODULES (a workflow author's stage types).
        from . import stages  # noqa: F401

        for module in settings.JOBSITE_STAGE_MODULES:
            import_module(module)
