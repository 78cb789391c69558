import re
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from audit.retention import run_purge
from webhooks.retention import webhook_deliveries_purge

_AGE = re.compile(r"^(\d+)d$")


class Command(BaseCommand):
    help = "Delete succeeded and dead webhook deliveries (with their attempts) older than an age, in batches."

    def add_arguments(self, parser):
        parser.add_argument("--older-than", required=True, help="Age such as 30d (by creation).")
        parser.add_argument("--batch-size", type=int, default=1000)
        parser.add_argument("--dry-run", action="store_true", help="Count what would be deleted; delete nothing.")

    def handle(self, *args, older_than, batch_size, dry_run, **options):
        match = _AGE.match(older_than)
        if not match or int(match[1]) < 1:
            raise CommandError("--older-than must be a number of days such as 30d.")
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        cutoff = timezone.now() - timedelta(days=int(match[1]))
        run_purge(
            self,
            name="cleanup_webhook_deliveries",
            batches=lambda: webhook_deliveries_purge(cutoff=cutoff, batch_size=batch_size, dry_run=dry_run),
            dry_run=dry_run,
            noun=f"webhook deliveries (succeeded, dead) created before {cutoff:%Y-%m-%d %H:%M}",
            app="webhooks",
            entity="delivery",
            details={"cutoff": cutoff.isoformat()},
        )
