"""`make run`'s demo superuser: created once, never reset."""

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from tests import credentials


def ensure(**options) -> str:
    out = StringIO()
    call_command("ensure_demo_superuser", stdout=out, **options)
    return out.getvalue()


def test_first_run_creates_a_superuser_and_prints_its_password(settings, db):
    settings.DEBUG = True
    output = ensure()
    password = credentials.remember(output.strip().rsplit(" / ", 1)[1])
    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser and admin.is_staff
    assert admin.check_password(password)


def test_later_runs_keep_the_password_the_developer_has(settings, db):
    settings.DEBUG = True
    credentials.remember(ensure().strip().rsplit(" / ", 1)[1])
    admin = get_user_model().objects.get(username="admin")
    admin.set_password("the developer's own password")
    admin.save()

    output = ensure()

    assert "exists; its password is unchanged" in output
    admin.refresh_from_db()
    assert admin.check_password("the developer's own password")


def test_it_refuses_to_run_without_debug(settings, db):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="only created when DEBUG is on"):
        ensure()
    assert not get_user_model().objects.exists()
