"""Maintenance of the database broker, scheduled by `manage.py crontab`."""

from datetime import timedelta

import dramatiq
from django.conf import settings
from dramatiq_crontab import interval

from .backend import DatabaseBroker


@interval(seconds=3600)
@dramatiq.actor(actor_name="broker_prune_dead_letters", queue_name="maintenance", max_retries=0, max_age=600_000)
def broker_prune_dead_letters() -> None:
    """Delete the database broker's dead letters older than DB_BROKER_DEAD_LETTER_TTL_DAYS."""
    broker = dramatiq.get_broker()
    if isinstance(broker, DatabaseBroker):
        broker.prune_dead_letters(older_than=timedelta(days=settings.DB_BROKER_DEAD_LETTER_TTL_DAYS))
