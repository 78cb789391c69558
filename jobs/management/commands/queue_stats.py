from django.core.management.base import BaseCommand
from django.utils import timezone
from dramatiq.errors import BrokerConnectionError

from jobs import selectors
from jobsite.broker.depth import broker_queue_depths


class Command(BaseCommand):
    help = "Print queue depths per broker queue, job counts per status, the oldest waiting job and live workers."

    def handle(self, *args, **options):
        now = timezone.now()
        self.stdout.write(self.style.MIGRATE_HEADING("Broker queues"))
        try:
            depths = broker_queue_depths()
        except BrokerConnectionError as exc:
            self.stdout.write(self.style.ERROR(f"  broker unreachable: {exc}"))
            depths = {}
        self.stdout.write(f"  {'queue':<20}{'ready':>8}{'delayed':>9}{'in flight':>11}{'dead':>7}")
        for queue, depth in depths.items():
            cells = [depth.get(k) for k in ("ready", "delayed", "in_flight", "dead")]
            values = ["-" if v is None else str(v) for v in cells]
            self.stdout.write(f"  {queue:<20}{values[0]:>8}{values[1]:>9}{values[2]:>11}{values[3]:>7}")

        self.stdout.write(self.style.MIGRATE_HEADING("Jobs by status"))
        for status, count in selectors.job_counts_by_status().items():
            self.stdout.write(f"  {status:<12}{count:>10}")
        oldest = selectors.oldest_waiting_job()
        if oldest:
            waited = (now - oldest.created_at).total_seconds()
            self.stdout.write(f"  oldest waiting: {oldest.pk} ({oldest.status}, {waited:.0f} s since created)")

        workers = list(selectors.live_workers(now=now))
        self.stdout.write(self.style.MIGRATE_HEADING(f"Live workers ({len(workers)})"))
        for worker in workers:
            seen = (now - worker.last_seen_at).total_seconds()
            self.stdout.write(f"  {worker.worker_id:<40} queues {','.join(worker.queues)}  seen {seen:.0f} s ago")
