"""Worker middleware: the idle poll, and database connections kept across messages."""

import dramatiq
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from jobs.middleware import DbConnections, IdlePoll


def test_idle_poll_sets_how_long_an_idle_worker_waits(settings):
    settings.WORKER_IDLE_POLL_MS = 40
    worker = dramatiq.Worker(dramatiq.get_broker(), worker_threads=1)

    IdlePoll().before_worker_boot(dramatiq.get_broker(), worker)

    assert worker.worker_timeout == 40


@pytest.mark.django_db(transaction=True)
def test_a_busy_threads_connection_is_not_checked_before_every_message(settings):
    if connection.vendor != "postgresql":
        pytest.skip("health checks are PostgreSQL's")
    settings.WORKER_CONN_CHECK_IDLE_SECONDS = 30
    middleware = DbConnections()
    connection.ensure_connection()
    opened = connection.connection

    with CaptureQueriesContext(connection) as queries:
        for _ in range(20):
            middleware.before_process_message(None, None)
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            middleware.after_process_message(None, None)

    assert connection.connection is opened  # kept across messages
    assert len(queries.captured_queries) == 20  # the job's own statements only, no health check


@pytest.mark.django_db(transaction=True)
def test_a_connection_that_failed_is_replaced_after_the_message(settings):
    middleware = DbConnections()
    connection.ensure_connection()
    connection.connection.close()  # the server went away
    with pytest.raises(Exception), connection.cursor() as cursor:  # noqa: B017 - whatever the driver raises
        cursor.execute("SELECT 1")

    middleware.after_process_message(None, None, exception=RuntimeError())

    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)
