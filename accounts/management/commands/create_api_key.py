import re
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from accounts.scopes import SCOPES
from accounts.services import ApiKeyError, ApiKeyLimitReached, api_key_create
from audit.context import command_context

_DURATION = re.compile(r"^(\d+)([dhm])$")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


class Command(BaseCommand):
    help = "Create an API key for a user and print it once (only its hash is stored)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", required=True, help="What the key is for (at most 50 characters).")
        parser.add_argument("--scopes", default="", help=f"Comma-separated, from: {', '.join(SCOPES)}. Default: all.")
        parser.add_argument("--expires-in", help="Lifetime such as 90d, 12h or 30m. Default: no expiry.")

    def handle(self, *args, username, name, scopes, expires_in, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user named {username!r}.")
        expires_at = None
        if expires_in:
            match = _DURATION.match(expires_in)
            if not match:
                raise CommandError("--expires-in must look like 90d, 12h or 30m.")
            expires_at = timezone.now() + timedelta(**{_UNITS[match[2]]: int(match[1])})
        try:
            with command_context("create_api_key"):
                api_key, key = api_key_create(
                    user=user,
                    name=name,
                    scopes=[s.strip() for s in scopes.split(",") if s.strip()],
                    expires_at=expires_at,
                )
        except (ApiKeyError, ApiKeyLimitReached) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(self.style.SUCCESS(f"Created API key {api_key.prefix} for {username}."))
        self.stdout.write("Store it now; it cannot be shown again:")
        self.stdout.write(key)
