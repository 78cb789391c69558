"""Worker processes: who this worker is, which jobs its threads run, and its heartbeat."""

from __future__ import annotations

import os
import socket
import threading
import uuid
from contextlib import contextmanager
from typing import Any

from django.utils import timezone

from .models import Job, JobStatus, WorkerProcess

# A job its worker holds; one that finishes while `cancelling` still completes or fails.
RUNNING_STATUSES = [JobStatus.PROCESSING, JobStatus.CANCELLING]

_process: dict[str, Any] = {}


def process_id() -> str:
    """Identify this worker process: host, pid and a boot id (pids are reused)."""
    if _process.get("pid") != os.getpid():
        _process.update(pid=os.getpid(), id=f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}")
    return _process["id"]


def worker_id() -> str:
    """Identify this worker thread in `locked_by`: `<process id>/<thread name>`."""
    return f"{process_id()}/{threading.current_thread().name}"


_running: set[str] = set()
_running_lock = threading.Lock()


def running_job_ids() -> set[str]:
    """Ids of the jobs this process's threads are running right now."""
    with _running_lock:
        return set(_running)


@contextmanager
def running(job_id: str):
    """Count the job among this process's running jobs for the duration of the block.

    The heartbeat refreshes only those, and hands back any job this process
    holds but no longer runs (a database error cut its run short).
    """
    with _running_lock:
        _running.add(job_id)
    try:
        yield
    finally:
        with _running_lock:
            _running.discard(job_id)


def worker_beat(*, queues: list[str], threads: int = 0) -> int:
    """Record this worker process as alive and refresh the heartbeat of every job it runs.

    Returns the number of jobs whose heartbeat was refreshed.
    """
    now = timezone.now()
    seen = {
        "hostname": socket.gethostname(),
        "pid": os.getpid(),
        "queues": queues,
        "threads": threads,
        "last_seen_at": now,
    }
    WorkerProcess.objects.update_or_create(
        worker_id=process_id(), defaults=seen, create_defaults={**seen, "started_at": now}
    )
    ids = running_job_ids()
    if not ids:
        return 0
    held = Job.objects.filter(locked_by__startswith=f"{process_id()}/", status__in=RUNNING_STATUSES)
    return held.filter(pk__in=ids).update(heartbeat_at=now)


def worker_stopped() -> None:
    """Record that this worker process shut down."""
    WorkerProcess.objects.filter(worker_id=process_id()).update(stopped_at=timezone.now())
