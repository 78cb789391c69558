from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "webhooks"
    verbose_name = "Webhooks"

    def ready(self):
        # Declare the actors (and so the `webhooks` queue) on the broker in every process.
        from . import actors  # noqa: F401
