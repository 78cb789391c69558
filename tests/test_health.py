"""Health endpoints: up/down for everyone, the detail only for operators."""

import dramatiq
import pytest
import requests
from django.conf import settings as django_settings
from django.contrib.auth.models import Permission
from django.db import connection
from django.utils import timezone
from dramatiq.brokers.redis import RedisBroker
from rest_framework.test import APIClient

from jobs.models import WorkerProcess
from tests import credentials
from tests.e2e.conftest import child_env, web_server
from tests.factories import UserFactory

SECRET = django_settings.JOBSITE_API_SECRET
PATHS = ["/health", "/health/", "/health/db", "/health/db/", "/health/queue", "/health/queue/"]


@pytest.fixture
def live_worker(db):
    now = timezone.now()
    return WorkerProcess.objects.create(
        worker_id="box:7:abc", hostname="box", pid=7, queues=["jobs"], started_at=now, last_seen_at=now
    )


@pytest.fixture
def unreachable_broker():
    previous = dramatiq.get_broker()
    broker = RedisBroker(url="redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    broker.declare_queue("jobs")
    dramatiq.set_broker(broker)
    yield broker
    dramatiq.set_broker(previous)


def _staff(*, staff=True, perm=True):
    user = UserFactory(is_staff=staff)
    if perm:
        user.user_permissions.add(Permission.objects.get(codename="view_all_jobs"))
    client = APIClient()
    client.force_login(user)
    return client


@pytest.mark.parametrize("path", PATHS)
def test_public_health_says_up_and_nothing_more(path, db, stub_broker, live_worker):
    response = APIClient().get(path)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_queue_detail_names_queues_throughput_and_workers_for_an_operator(db, stub_broker, live_worker, operator_user):
    body = APIClient().get("/health/queue", **credentials.jwt_for(operator_user)).json()
    assert body["status"] == "ok"
    assert "jobs" in body["queues"]
    assert body["processed"] == {"last_minute": 0, "last_hour": 0}
    assert [w["id"] for w in body["workers"]] == ["box:7:abc"]


def _sees_detail(caller) -> bool:
    """`caller` is a logged-in client or the headers of a request."""
    client, headers = (caller, {}) if isinstance(caller, APIClient) else (APIClient(), caller)
    response = client.get("/health/queue/", **headers)
    assert response.status_code == 200
    return "workers" in response.json()


def test_who_sees_the_detail(db, stub_broker, live_worker, operator_user, user):
    assert _sees_detail({"HTTP_X_API_SECRET": SECRET})
    assert _sees_detail(credentials.jwt_for(operator_user))
    assert _sees_detail(credentials.api_key_for(operator_user, scopes=["jobs:read"]))
    assert _sees_detail(_staff())

    assert not _sees_detail({})
    assert not _sees_detail(credentials.jwt_for(user))  # a submitter
    assert not _sees_detail(credentials.api_key_for(operator_user, scopes=["jobs:create"]))
    assert not _sees_detail(_staff(perm=False))  # staff without the permission
    assert not _sees_detail(_staff(staff=False))  # the permission, but not staff, in a session


def test_detail_is_public_when_configured(settings, db, stub_broker, live_worker):
    settings.HEALTH_DETAIL_PUBLIC = True
    assert _sees_detail({})
    assert APIClient().get("/health/db").json() == {"status": "ok", "database": connection.vendor}


def test_wrong_credentials_are_401_in_the_error_shape(db):
    response = APIClient().get("/health/db", HTTP_X_API_SECRET="not the secret")
    assert response.status_code == 401
    assert set(response.json()) == {"error", "message", "details", "request_id"}


def test_probes_without_credentials_are_never_throttled(settings, db, stub_broker):
    settings.THROTTLE_RATES = {**settings.THROTTLE_RATES, "anon": "2/minute"}
    assert {APIClient().get("/health/queue").status_code for _ in range(5)} == {200}
    guesses = [APIClient().get("/health", HTTP_X_API_SECRET=f"guess{n}").status_code for n in range(3)]
    assert guesses == [401, 401, 429]


def test_other_methods_are_405_in_the_error_shape(db):
    response = APIClient().post("/health/db")
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"


def test_broker_outage_is_503_and_only_an_operator_sees_why(db, unreachable_broker, operator_user):
    public = APIClient().get("/health/queue")
    assert public.status_code == 503
    assert public.json() == {"status": "unavailable"}

    detailed = APIClient().get("/health/queue", **credentials.jwt_for(operator_user))
    assert detailed.status_code == 503
    assert detailed.json()["broker"] == "unreachable"
    assert detailed.json()["error"]


@pytest.mark.e2e
def test_database_outage_is_503_without_the_driver_error_unless_operator():
    env = child_env(DATABASE_URL="postgres://jobsite_user@127.0.0.1:1/unreachable", DRAMATIQ_BROKER_URL="stub")
    with web_server(env) as url:
        public = requests.get(f"{url}/health/db", timeout=10)
        assert public.status_code == 503
        assert public.json() == {"status": "unavailable"}
        assert "jobsite_user" not in public.text and "127.0.0.1" not in public.text

        detailed = requests.get(f"{url}/health/db/", headers={"X-API-Secret": SECRET}, timeout=10)
        assert detailed.status_code == 503
        assert detailed.json()["database"] == "postgresql"
        assert "127.0.0.1" in detailed.json()["error"]
