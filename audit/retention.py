"""The shared body of the retention commands (cleanup_audit, cleanup_jobs, cleanup_results)."""

from collections.abc import Callable, Iterator

from .context import command_context
from .services import audit_record


def run_purge(
    command,
    *,
    name: str,
    batches: Callable[[], Iterator[int]],
    dry_run: bool,
    noun: str,
    app: str,
    entity: str,
    details: dict,
) -> int:
    """Run a batched purge for a management command: progress per batch, a dry-run
    report, and one audit row for what was deleted. Returns the count."""
    total = 0
    with command_context(name):
        for count in batches():
            total += count
            if not dry_run:
                command.stdout.write(f"deleted {count} {noun} ({total} so far)")
        if dry_run:
            command.stdout.write(f"dry run: {total} {noun} would be deleted")
            return total
        audit_record(app=app, entity=entity, verb="purge", details={"deleted": total, **details})
    command.stdout.write(command.style.SUCCESS(f"Deleted {total} {noun}."))
    return total
