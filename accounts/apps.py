from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"

    def ready(self):
        # Registers the OpenAPI descriptions of the API-key and shared-secret schemes.
        from jobsite.api import schema  # noqa: F401
