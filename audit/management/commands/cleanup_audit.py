import re
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from audit.retention import run_purge
from audit.services import audit_purge_older_than

_AGE = re.compile(r"^(\d+)d$")


class Command(BaseCommand):
    help = "Delete audit rows older than a given age, in batches (the only way audit rows are removed)."

    def add_arguments(self, parser):
        parser.add_argument("--older-than", required=True, help="Age such as 90d.")
        parser.add_argument("--batch-size", type=int, default=5000)
        parser.add_argument("--dry-run", action="store_true", help="Count what would be deleted; delete nothing.")

    def handle(self, *args, older_than, batch_size, dry_run, **options):
        match = _AGE.match(older_than)
        if not match or int(match[1]) < 1:
            raise CommandError("--older-than must be a number of days such as 90d.")
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        cutoff = timezone.now() - timedelta(days=int(match[1]))
        run_purge(
            self,
            name="cleanup_audit",
            batches=lambda: audit_purge_older_than(cutoff=cutoff, batch_size=batch_size, dry_run=dry_run),
            dry_run=dry_run,
            noun=f"audit rows older than {cutoff:%Y-%m-%d %H:%M}",
            app="audit",
            entity="audit_log",
            details={"cutoff": cutoff.isoformat()},
        )
