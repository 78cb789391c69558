"""JWT login and refresh, API keys, and the management command."""

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import ApiKey
from accounts.services import ApiKeyLimitReached, api_key_create
from tests import credentials
from tests.factories import UserFactory

PASSWORD = "correct horse battery staple"


@pytest.fixture
def login(db):
    credentials.remember(PASSWORD)

    def do(username="alice", password=PASSWORD):
        return APIClient().post("/api/v1/auth/login/", {"username": username, "password": password}, format="json")

    return do


def test_login_returns_access_and_refresh_tokens_that_authenticate(login, user):
    response = login()
    assert response.status_code == 200
    tokens = response.json()
    assert set(tokens) == {"access", "refresh"}
    credentials.remember(tokens["access"])
    credentials.remember(tokens["refresh"])

    listed = APIClient().get("/api/v1/jobs/", HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
    assert listed.status_code == 200


def test_login_with_a_wrong_password_is_401_in_the_error_shape(login, user):
    response = login(password="wrong password")
    assert response.status_code == 401
    body = response.json()
    assert body["error"] == "authentication_failed"
    assert "wrong password" not in response.content.decode()


def test_refresh_rotates_and_a_rotated_refresh_token_is_refused(login, user):
    refresh = login().json()["refresh"]
    credentials.remember(refresh)
    client = APIClient()

    first = client.post("/api/v1/auth/refresh/", {"refresh": refresh}, format="json")
    assert first.status_code == 200
    rotated = first.json()
    assert set(rotated) == {"access", "refresh"}
    assert rotated["refresh"] != refresh
    credentials.remember(rotated["refresh"])
    credentials.remember(rotated["access"])

    again = client.post("/api/v1/auth/refresh/", {"refresh": refresh}, format="json")
    assert again.status_code == 401
    assert again.json()["error"] == "authentication_failed"

    assert client.post("/api/v1/auth/refresh/", {"refresh": rotated["refresh"]}, format="json").status_code == 200


def test_access_token_signed_with_another_key_is_refused(user):
    response = APIClient().get("/api/v1/jobs/", **credentials.foreign_key_jwt_for(user))
    assert response.status_code == 401


def test_access_token_is_refused_after_the_password_changes(user):
    headers = credentials.jwt_for(user)
    user.set_password("a brand new password 123")
    user.save()
    assert APIClient().get("/api/v1/jobs/", **headers).status_code == 401


def test_refresh_token_cannot_be_used_as_an_access_token(user):
    refresh = credentials.refresh_for(user)
    assert APIClient().get("/api/v1/jobs/", HTTP_AUTHORIZATION=f"Bearer {refresh}").status_code == 401


def test_created_key_is_shown_once_and_only_its_hash_is_stored(user):
    client = APIClient()
    response = client.post(
        "/api/v1/auth/api-keys/",
        {"name": "ci", "scopes": ["jobs:read"]},
        format="json",
        **credentials.jwt_for(user),
    )
    assert response.status_code == 201
    body = response.json()
    key = credentials.remember(body["key"])
    assert set(body) == {"id", "name", "prefix", "key", "scopes", "expires_at", "created_at"}
    assert key.startswith(body["prefix"] + ".")

    row = ApiKey.objects.filter(prefix=body["prefix"]).values().get()
    assert all(key not in str(value) for value in row.values())
    assert row["hashed_key"].startswith("sha512$$")

    listed = client.get("/api/v1/auth/api-keys/", **credentials.jwt_for(user)).json()
    assert listed["results"][0]["id"] == body["prefix"]
    assert "key" not in listed["results"][0]
    assert key not in str(listed)


def test_key_works_in_either_header_and_records_last_use(user):
    for header in ("Authorization", "X-API-Key"):
        headers = credentials.api_key_for(user, header=header)
        assert APIClient().get("/api/v1/jobs/", **headers).status_code == 200
    assert ApiKey.objects.filter(user=user, last_used_at__isnull=False).count() == 2


def test_key_scopes_narrow_but_never_widen_the_users_permissions(user):
    read_only = credentials.api_key_for(user, scopes=["jobs:read"])
    client = APIClient()
    assert client.get("/api/v1/jobs/", **read_only).status_code == 200
    submit = client.post("/api/v1/jobs/", {"pipeline": "x", "input_data": {}}, format="json", **read_only)
    assert submit.status_code == 403

    nobody = UserFactory(username="no-perms")
    everything = credentials.api_key_for(nobody, scopes=["jobs:read", "jobs:create"])
    assert client.get("/api/v1/jobs/", **everything).status_code == 403


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "k", "scopes": ["jobs:delete"]}, "scopes"),
        ({"name": "k", "scopes": "jobs:read"}, "scopes"),
        ({"name": ""}, "name"),
        ({"name": "x" * 51}, "name"),
        ({"name": "k", "expires_at": "yesterday"}, "expires_at"),
    ],
)
def test_invalid_key_requests_are_400_naming_the_field(user, body, field):
    response = APIClient().post("/api/v1/auth/api-keys/", body, format="json", **credentials.jwt_for(user))
    assert response.status_code == 400
    assert field in response.json()["details"]
    assert not ApiKey.objects.filter(user=user).exists()


def test_key_that_expires_in_the_past_is_refused_at_creation(user):
    past = (timezone.now() - timedelta(days=1)).isoformat()
    response = APIClient().post(
        "/api/v1/auth/api-keys/", {"name": "k", "expires_at": past}, format="json", **credentials.jwt_for(user)
    )
    assert response.status_code == 400
    assert "expires_at" in response.json()["details"]


def test_create_api_key_command_prints_the_key_once_and_stores_its_hash(user):
    out = StringIO()
    call_command(
        "create_api_key", "alice", "--name", "deploy", "--scopes", "jobs:read", "--expires-in", "30d", stdout=out
    )
    key = credentials.remember(out.getvalue().strip().splitlines()[-1])
    api_key = ApiKey.objects.get(user=user, name="deploy")
    assert key.startswith(api_key.prefix + ".")
    assert api_key.scopes == ["jobs:read"]
    assert timedelta(days=29) < api_key.expiry_date - timezone.now() <= timedelta(days=30)
    assert APIClient().get("/api/v1/jobs/", HTTP_X_API_KEY=key).status_code == 200


def test_create_api_key_command_rejects_unknown_users_and_scopes(user):
    with pytest.raises(CommandError, match="No user"):
        call_command("create_api_key", "ghost", "--name", "x")
    with pytest.raises(CommandError, match="Unknown scope"):
        call_command("create_api_key", "alice", "--name", "x", "--scopes", "root")


def test_refresh_token_is_refused_after_the_password_changes(login, user):
    refresh = credentials.remember(login().json()["refresh"])
    user.set_password("a brand new password 123")
    user.save()

    response = APIClient().post("/api/v1/auth/refresh/", {"refresh": refresh}, format="json")
    assert response.status_code == 401
    assert response.json()["error"] == "authentication_failed"


def test_refresh_token_of_a_deleted_user_is_401_not_500(login, user):
    refresh = credentials.remember(login().json()["refresh"])
    user.delete()

    response = APIClient().post("/api/v1/auth/refresh/", {"refresh": refresh}, format="json")
    assert response.status_code == 401
    assert response.json()["error"] == "authentication_failed"


def test_refresh_token_of_a_deactivated_user_is_refused(login, user):
    refresh = credentials.remember(login().json()["refresh"])
    user.is_active = False
    user.save()

    assert APIClient().post("/api/v1/auth/refresh/", {"refresh": refresh}, format="json").status_code == 401


def test_active_keys_per_user_are_capped_and_revoked_or_expired_keys_do_not_count(settings, user):
    settings.API_KEYS_PER_USER_MAX = 3
    client = APIClient()
    auth = credentials.jwt_for(user)

    def create():
        return client.post("/api/v1/auth/api-keys/", {"name": "k"}, format="json", **auth)

    created = [create() for _ in range(3)]
    assert [r.status_code for r in created] == [201, 201, 201]
    for response in created:
        credentials.remember(response.json()["key"])

    refused = create()
    assert refused.status_code == 409
    assert refused.json()["error"] == "api_key_limit_reached"
    assert refused.json()["details"] == {"limit": 3}
    assert ApiKey.objects.filter(user=user).count() == 3

    client.delete(f"/api/v1/auth/api-keys/{created[0].json()['prefix']}/", **auth)
    ApiKey.objects.filter(prefix=created[1].json()["prefix"]).update(expiry_date=timezone.now() - timedelta(seconds=1))
    again = [create(), create()]
    assert [r.status_code for r in again] == [201, 201]
    for response in again:
        credentials.remember(response.json()["key"])
    assert create().status_code == 409


def test_key_cap_is_per_user(settings, user, other_user):
    settings.API_KEYS_PER_USER_MAX = 1
    credentials.api_key_for(user)
    credentials.api_key_for(other_user)
    assert ApiKey.objects.count() == 2


def test_create_api_key_command_refuses_keys_over_the_cap(settings, user):
    settings.API_KEYS_PER_USER_MAX = 1
    credentials.api_key_for(user)
    with pytest.raises(CommandError, match="at most 1 active API key"):
        call_command("create_api_key", "alice", "--name", "one too many", stdout=StringIO())
    assert ApiKey.objects.filter(user=user).count() == 1


def test_parallel_key_creations_never_exceed_the_cap(settings, transactional_db, user):
    settings.API_KEYS_PER_USER_MAX = 5
    barrier = threading.Barrier(12)

    def create(n):
        barrier.wait()
        try:
            credentials.remember(api_key_create(user=user, name=f"k{n}")[1])
            return "created"
        except ApiKeyLimitReached:
            return "refused"
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=12) as pool:
        outcomes = list(pool.map(create, range(12)))

    assert outcomes.count("created") == 5
    assert ApiKey.objects.filter(user=user).count() == 5
