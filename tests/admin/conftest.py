"""Admin test fixtures: staff users in each role, logged-in clients, jobs in known states."""

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from tests.conftest import grant_role
from tests.factories import PipelineFactory, UserFactory


def staff_user(username: str, role: str | None = None, *perms: str):
    """A staff user (may open the admin) in `role`, with any extra permissions."""
    user = UserFactory(username=username, is_staff=True)
    if role:
        grant_role(user, role)
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return user


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def operator(db):
    return staff_user("op", "operator")


@pytest.fixture
def auditor(db):
    return staff_user("aud", "auditor")


@pytest.fixture
def submitter(db):
    """A staff submitter: sees only their own jobs, has no permission to act."""
    return staff_user("sub", "submitter")


@pytest.fixture
def operator_client(operator):
    return client_for(operator)


@pytest.fixture
def pipeline(db):
    return PipelineFactory(name="reports", config={"stages": [{"name": "echo", "type": "echo", "params": {}}]})
