from django.core.management.base import BaseCommand, CommandError

from audit.retention import run_purge
from jobs.retention import job_results_purge_expired


class Command(BaseCommand):
    help = "Delete job results past their expires_at (RESULT_TTL_DAYS), with their files, in batches."

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=1000)
        parser.add_argument("--dry-run", action="store_true", help="Count what would be deleted; delete nothing.")

    def handle(self, *args, batch_size, dry_run, **options):
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        run_purge(
            self,
            name="cleanup_results",
            batches=lambda: job_results_purge_expired(batch_size=batch_size, dry_run=dry_run),
            dry_run=dry_run,
            noun="expired results",
            app="jobs",
            entity="job_result",
            details={},
        )
