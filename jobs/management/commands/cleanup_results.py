from django.core.management.base import BaseCommand, CommandError

from audit.context import command_context
from audit.services import audit_record
from jobs.services import job_results_purge_expired


class Command(BaseCommand):
    help = "Delete job results past their expires_at (RESULT_TTL_DAYS), with their files, in batches."

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=1000)
        parser.add_argument("--dry-run", action="store_true", help="Count what would be deleted; delete nothing.")

    def handle(self, *args, batch_size, dry_run, **options):
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        total = 0
        with command_context("cleanup_results"):
            for count in job_results_purge_expired(batch_size=batch_size, dry_run=dry_run):
                total += count
                if not dry_run:
                    self.stdout.write(f"deleted {count} results ({total} so far)")
            if dry_run:
                self.stdout.write(f"dry run: {total} expired results would be deleted")
                return
            audit_record(app="jobs", entity="job_result", verb="purge", details={"deleted": total})
        self.stdout.write(self.style.SUCCESS(f"Deleted {total} expired results."))
