from django.core.management.base import BaseCommand

from audit.context import command_context
from pipelines.demo import DEMO_PIPELINES
from pipelines.services import pipeline_ensure


class Command(BaseCommand):
    help = "Create or update the built-in demo pipelines (sample_task, text-analysis)."

    def handle(self, *args, **options):
        with command_context("install_demo_pipelines"):
            for spec in DEMO_PIPELINES:
                pipeline, outcome = pipeline_ensure(**spec)
                self.stdout.write(f"{pipeline.name}: {outcome} (version {pipeline.version})")
