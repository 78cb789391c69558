"""Messages of the Dramatiq broker kept in the Django database."""

from django.db import models


class BrokerMessage(models.Model):
    """One Dramatiq message waiting, leased to a consumer, or dead-lettered.

    A row is one delivery of a message: a retry enqueues a new row with the same
    `message_id`. Acked rows are deleted. A leased row whose lease runs out (its
    consumer died) goes back to `ready` for the next consumer.
    """

    class State(models.TextChoices):
        READY = "ready", "Ready"
        LEASED = "leased", "Leased"
        DEAD = "dead", "Dead-lettered"

    id = models.BigAutoField(primary_key=True)
    message_id = models.CharField(max_length=64, db_index=True)
    queue_name = models.CharField(max_length=255)
    actor_name = models.CharField(max_length=255)
    state = models.CharField(max_length=16, choices=State.choices, default=State.READY)
    priority = models.SmallIntegerField(default=0, help_text="Higher is delivered first (the `priority` option).")
    body = models.BinaryField()
    available_at = models.DateTimeField(help_text="Not delivered before this time (delayed messages).")
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    consumer_id = models.CharField(max_length=255, blank=True, default="")
    deliveries = models.PositiveIntegerField(default=0)
    enqueued_at = models.DateTimeField(auto_now_add=True)
    dead_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "broker_message"
        indexes = [
            models.Index(fields=["queue_name", "state", "-priority", "available_at"], name="broker_msg_fetch_idx"),
            models.Index(fields=["state", "lease_expires_at"], name="broker_msg_lease_idx"),
        ]

    def __str__(self):
        return f"{self.actor_name} {self.message_id} ({self.state})"
