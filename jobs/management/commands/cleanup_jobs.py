import re
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from audit.retention import run_purge
from jobs.models import TERMINAL_STATUSES
from jobs.retention import jobs_purge

_AGE = re.compile(r"^(\d+)d$")


class Command(BaseCommand):
    help = "Delete finished jobs older than an age, with their stage runs, results and result files, in batches."

    def add_arguments(self, parser):
        parser.add_argument("--older-than", required=True, help="Age such as 30d (by completion, else creation).")
        parser.add_argument(
            "--status",
            default=",".join(sorted(TERMINAL_STATUSES)),
            help="Comma-separated finished statuses to delete (default: completed,failed,cancelled).",
        )
        parser.add_argument("--batch-size", type=int, default=1000)
        parser.add_argument("--dry-run", action="store_true", help="Count what would be deleted; delete nothing.")

    def handle(self, *args, older_than, status, batch_size, dry_run, **options):
        match = _AGE.match(older_than)
        if not match or int(match[1]) < 1:
            raise CommandError("--older-than must be a number of days such as 30d.")
        statuses = [s.strip() for s in status.split(",") if s.strip()]
        unknown = [s for s in statuses if s not in TERMINAL_STATUSES]
        if unknown or not statuses:
            raise CommandError(f"--status takes finished statuses only: {', '.join(sorted(TERMINAL_STATUSES))}.")
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        cutoff = timezone.now() - timedelta(days=int(match[1]))
        run_purge(
            self,
            name="cleanup_jobs",
            batches=lambda: jobs_purge(cutoff=cutoff, statuses=statuses, batch_size=batch_size, dry_run=dry_run),
            dry_run=dry_run,
            noun=f"jobs ({', '.join(statuses)}) finished before {cutoff:%Y-%m-%d %H:%M}",
            app="jobs",
            entity="job",
            details={"statuses": statuses, "cutoff": cutoff.isoformat()},
        )
