"""Counts the SQL statements and commits of a process (a bench worker or web server).

Loaded as a module of the `dramatiq` command after `django_dramatiq.setup`
(bench/throughput.py), or by gunicorn through bench/gunicorn_sqlcount.py
(bench/submit.py), it wraps every database connection's execution and
`commit`, and writes the counts to `$BENCH_SQLCOUNT_DIR/<pid>.json` when the
process shuts down. A statement run outside a transaction is its own commit
(autocommit).

In a worker it also counts the jobs that finished (completed or failed) and
writes the count to `$BENCH_SQLCOUNT_DIR/<pid>.done` every 50 ms, which is how
bench/throughput.py follows the drain: in-process, like the anchors'
`common.mark()`, instead of a `count(*)` over the jobs table that would load
PostgreSQL and the machine it measures.
"""

import json
import os
import threading
import time
from collections import Counter
from pathlib import Path

import dramatiq
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.signals import connection_created

_lock = threading.Lock()
counts: Counter = Counter()


def _kind(sql: str) -> str:
    """Who ran the statement: the heartbeat thread, the broker (its consumers' fetches and acks), or the job path."""
    words = sql.lstrip().split(None, 1)
    verb = words[0].upper() if words else "?"
    if "heartbeat" in threading.current_thread().name:
        return f"heartbeat {verb}"
    if "broker_message" in sql:
        return f"broker {verb}"
    return f"job path {verb}"


def _count(execute, sql, params, many, context):
    connection = context["connection"]
    with _lock:
        counts["statements"] += 1
        counts[_kind(sql)] += 1
        if not connection.in_atomic_block:
            counts["commits"] += 1
    return execute(sql, params, many, context)


def _install(sender, connection, **kwargs):
    if _count not in connection.execute_wrappers:
        connection.execute_wrappers.append(_count)


_commit = BaseDatabaseWrapper.commit


def _counted_commit(self):
    with _lock:
        counts["commits"] += 1
    return _commit(self)


BaseDatabaseWrapper.commit = _counted_commit
connection_created.connect(_install)


def dump() -> None:
    directory = os.environ.get("BENCH_SQLCOUNT_DIR")
    if directory:
        with _lock:
            Path(directory, f"{os.getpid()}.json").write_text(json.dumps(dict(counts)))


finished = 0
REPORT_INTERVAL = 0.05


def _count_finished(record_outcome):
    def counted(job, outcome):
        global finished
        status = record_outcome(job, outcome)
        if status in ("completed", "failed"):
            with _lock:
                finished += 1
        return status

    return counted


def _report_finished(directory: str) -> None:
    """Write the number of finished jobs to <pid>.done whenever it changed (replaced atomically)."""
    path, sent = Path(directory, f"{os.getpid()}.done"), -1
    while True:
        time.sleep(REPORT_INTERVAL)
        if finished != sent:
            sent = finished
            path.with_suffix(".tmp").write_text(str(sent))
            path.with_suffix(".tmp").replace(path)


class _DumpCounts(dramatiq.Middleware):
    def before_worker_boot(self, broker, worker):
        from jobs import run  # before the worker threads start: every job is counted

        run.record_outcome = _count_finished(run.record_outcome)

    def after_worker_boot(self, broker, worker):
        directory = os.environ.get("BENCH_SQLCOUNT_DIR")
        if directory:
            threading.Thread(target=_report_finished, args=(directory,), daemon=True, name="bench-report").start()

    def after_worker_shutdown(self, broker, worker):
        dump()


dramatiq.get_broker().add_middleware(_DumpCounts())
