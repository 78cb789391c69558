from django.apps import AppConfig


class BrokerConfig(AppConfig):
    name = "jobsite.broker"
    label = "broker"
    verbose_name = "Database broker"
