from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from audit.context import command_context
from jobs.recovery import jobs_recover


class Command(BaseCommand):
    help = (
        "Recover stuck jobs (worker gone or heartbeat too old), re-send orphaned and overdue ones. "
        "Every action names its reason here and in the audit log."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Report what would be done; change nothing.")
        parser.add_argument(
            "--stuck-timeout",
            type=int,
            default=settings.JOB_STUCK_TIMEOUT_MINUTES,
            help="Minutes without a heartbeat after which a processing job is stuck (default %(default)s).",
        )
        parser.add_argument(
            "--orphan-timeout",
            type=int,
            default=settings.JOB_ORPHAN_TIMEOUT_MINUTES,
            help="Minutes after which a queued job never picked up is re-sent (default %(default)s).",
        )
        parser.add_argument(
            "--action",
            choices=["requeue", "fail"],
            default="requeue",
            help="What to do with stuck jobs that have attempts left (default requeue).",
        )

    def handle(self, *args, dry_run, stuck_timeout, orphan_timeout, action, **options):
        if stuck_timeout < 1 or orphan_timeout < 1:
            raise CommandError("Timeouts are whole minutes, at least 1.")
        with command_context("recover_jobs"):
            actions = jobs_recover(
                stuck_timeout=timedelta(minutes=stuck_timeout),
                orphan_timeout=timedelta(minutes=orphan_timeout),
                on_stuck=action,
                dry_run=dry_run,
            )
        prefix = "would " if dry_run else ""
        for item in actions:
            self.stdout.write(f"{prefix}{item}")
        self.stdout.write(self.style.SUCCESS(f"{len(actions)} job(s) {'to recover' if dry_run else 'recovered'}."))
