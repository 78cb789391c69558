import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "In DEBUG only: create the demo superuser once and print its credentials; an existing one is left alone."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")

    def handle(self, *args, username, **options):
        if not settings.DEBUG:
            raise CommandError("The demo superuser is only created when DEBUG is on.")
        users = get_user_model().objects
        if users.filter(username=username).exists():
            self.stdout.write(
                f"Demo superuser {username} exists; its password is unchanged "
                f'(`make manage ARGS="changepassword {username}"` sets a new one).'
            )
            return
        password = secrets.token_urlsafe(12)
        users.create_superuser(username=username, password=password, email="")
        self.stdout.write(self.style.SUCCESS(f"Demo superuser created: {username} / {password}"))
