"""Every /api/v1/ endpoint against every kind of caller.

When an endpoint is added, it joins ENDPOINTS and EXPECTED.
"""

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from accounts.models import ApiKey
from audit.models import AuditLog
from jobs.models import JobEvent, JobStatus
from jobs.run import job_run
from tests import credentials
from tests.conftest import grant_role
from tests.factories import JobFactory, UserFactory
from webhooks.services import webhook_events_dispatch

PRINCIPALS = [
    "none",
    "wrong_secret",
    "expired_jwt",
    "alg_none_jwt",
    "revoked_key",
    "expired_key",
    "key_without_scope",
    "user_without_permission",
    "other_user",
    "owner",
    "owner_key",
    "operator",
    "auditor",
    "service",
    "create_only_key",
    "pipelines_read_key",
    "owner_pipelines_read_key",
]

# endpoint name -> (method, url template, body)
ENDPOINTS = {
    "jobs.list": ("get", "/api/v1/jobs/", None),
    "jobs.create": ("post", "/api/v1/jobs/", {"pipeline": "sample_task", "input_data": {"n": 1}}),
    "jobs.detail": ("get", "/api/v1/jobs/{job}/", None),
    "jobs.result": ("get", "/api/v1/jobs/{job}/result/", None),
    "jobs.stats": ("get", "/api/v1/jobs/stats/", None),
    "jobs.validate": ("post", "/api/v1/jobs/validate/", {"pipeline": "sample_task", "input_data": {}}),
    "jobs.batch": ("post", "/api/v1/jobs/batch/", {"jobs": [{"pipeline": "sample_task", "input_data": {}}]}),
    "jobs.cancel": ("post", "/api/v1/jobs/{job}/cancel/", None),
    "jobs.delete": ("delete", "/api/v1/jobs/{job}/", None),
    "jobs.retry": ("post", "/api/v1/jobs/{job}/retry/", None),
    "api_keys.list": ("get", "/api/v1/auth/api-keys/", None),
    "api_keys.create": ("post", "/api/v1/auth/api-keys/", {"name": "ci"}),
    "api_keys.revoke": ("delete", "/api/v1/auth/api-keys/{key}/", None),
    "pipelines.list": ("get", "/api/v1/pipelines/", None),
    "pipelines.detail": ("get", "/api/v1/pipelines/sample_task/", None),
    "pipelines.create": (
        "post",
        "/api/v1/pipelines/",
        {"name": "new-one", "config": {"stages": [{"name": "a", "type": "echo"}]}},
    ),
    "pipelines.update": ("patch", "/api/v1/pipelines/sample_task/", {"description": "changed"}),
    "pipelines.delete": ("delete", "/api/v1/pipelines/text-analysis/", None),
    "stages.list": ("get", "/api/v1/stages/", None),
    "audit.list": ("get", "/api/v1/audit/logs/", None),
    "audit.detail": ("get", "/api/v1/audit/logs/{audit}/", None),
    "jobs.deliveries": ("get", "/api/v1/jobs/{job}/deliveries/", None),
    "webhooks.list": ("get", "/api/v1/webhooks/", None),
    "webhooks.create": ("post", "/api/v1/webhooks/", {"url": "http://127.0.0.1:9/hook", "events": ["job.failed"]}),
    "webhooks.detail": ("get", "/api/v1/webhooks/{subscription}/", None),
    "webhooks.update": ("patch", "/api/v1/webhooks/{subscription}/", {"description": "changed"}),
    "webhooks.delete": ("delete", "/api/v1/webhooks/{subscription}/", None),
    "webhooks.subscription_deliveries": ("get", "/api/v1/webhooks/{subscription}/deliveries/", None),
    "webhooks.test": ("post", "/api/v1/webhooks/{subscription}/test/", None),
    "webhooks.rotate_secret": ("post", "/api/v1/webhooks/{subscription}/rotate-secret/", None),
    "webhooks.deliveries": ("get", "/api/v1/webhooks/deliveries/", None),
    "webhooks.delivery": ("get", "/api/v1/webhooks/deliveries/{delivery}/", None),
    "webhooks.redeliver": ("post", "/api/v1/webhooks/deliveries/{delivery}/redeliver/", None),
}

UNAUTHENTICATED = {p: 401 for p in PRINCIPALS[:6]}
EXPECTED = {
    "jobs.list": {
        **UNAUTHENTICATED,
        "key_without_scope": 403,
        "user_without_permission": 403,
        "other_user": 200,
        "owner": 200,
        "owner_key": 200,
        "operator": 200,
        "auditor": 200,
        "service": 200,
        "create_only_key": 403,
        "pipelines_read_key": 403,
        "owner_pipelines_read_key": 403,
    },
    "jobs.create": {
        **UNAUTHENTICATED,
        "key_without_scope": 403,
        "user_without_permission": 403,
        "other_user": 201,
        "owner": 201,
        "owner_key": 201,
        "operator": 201,
        "auditor": 403,
        "service": 201,
        "create_only_key": 201,
        "pipelines_read_key": 403,
        "owner_pipelines_read_key": 403,
    },
    "jobs.detail": {
        **UNAUTHENTICATED,
        "key_without_scope": 403,
        "user_without_permission": 403,
        "other_user": 404,
        "owner": 200,
        "owner_key": 200,
        "operator": 200,
        "auditor": 200,
        "service": 200,
        "create_only_key": 403,
        "pipelines_read_key": 403,
        "owner_pipelines_read_key": 403,
    },
    "jobs.result": {
        **UNAUTHENTICATED,
        "key_without_scope": 403,
        "user_without_permission": 403,
        "other_user": 404,
        "owner": 200,
        "owner_key": 200,
        "operator": 200,
        "auditor": 200,
        "service": 200,
        "create_only_key": 403,
        "pipelines_read_key": 403,
        "owner_pipelines_read_key": 403,
    },
    # Keys are managed by a logged-in user; no key (scoped or not) and not the service.
    "api_keys.list": {
        **UNAUTHENTICATED,
        "key_without_scope": 403,
        "user_without_permission": 200,
        "other_user": 200,
        "owner": 200,
        "owner_key": 403,
        "operator": 200,
        "auditor": 200,
        "service": 403,
        "create_only_key": 403,
        "pipelines_read_key": 403,
        "owner_pipelines_read_key": 403,
    },
    "api_keys.create": {
        **UNAUTHENTICATED,
        "key_without_scope": 403,
        "user_without_permission": 201,
        "other_user": 201,
        "owner": 201,
        "owner_key": 403,
        "operator": 201,
        "auditor": 201,
        "service": 403,
        "create_only_key": 403,
        "pipelines_read_key": 403,
        "owner_pipelines_read_key": 403,
    },
    "api_keys.revoke": {
        **UNAUTHENTICATED,
        "key_without_scope": 403,
        "user_without_permission": 404,
        "other_user": 404,
        "owner": 204,
        "owner_key": 403,
        "operator": 404,
        "auditor": 404,
        "service": 403,
        "create_only_key": 403,
        "pipelines_read_key": 403,
        "owner_pipelines_read_key": 403,
    },
}

# Reading and submitting follow jobs.list / jobs.create. Cancel and retry: a submitter acts on its
# own jobs (another's is 404), operators and the service on all (the job in the table is completed:
# cancel and retry answer 409 once allowed); a key needs the jobs:cancel / jobs:retry scope.
EXPECTED["jobs.stats"] = EXPECTED["jobs.list"]
EXPECTED["jobs.validate"] = {
    **EXPECTED["jobs.create"],
    **{p: 200 for p, c in EXPECTED["jobs.create"].items() if c == 201},
}
EXPECTED["jobs.batch"] = EXPECTED["jobs.validate"]
MANAGERS = {"owner": 409, "other_user": 404, "operator": 409, "service": 409}
for _endpoint in ("jobs.cancel", "jobs.delete", "jobs.retry"):
    EXPECTED[_endpoint] = {**UNAUTHENTICATED, **{p: 403 for p in PRINCIPALS[6:] if p not in MANAGERS}, **MANAGERS}

# Pipelines: everyone signed in reads their outline (a key needs no particular scope); reading
# configs (stage params) needs pipelines.view_pipeline, which operators have and a key's
# pipelines:read scope lets through; operators write.
READERS = {p: 200 for p in PRINCIPALS[6:]}
EXPECTED["pipelines.list"] = EXPECTED["pipelines.detail"] = EXPECTED["stages.list"] = {**UNAUTHENTICATED, **READERS}
CONFIG_READERS = {"operator", "service", "pipelines_read_key"}
OUTLINE = {"id", "name", "description", "version", "is_active", "input_schema", "stages"}
WRITERS = {"operator", "service"}
for _endpoint, _ok in (("pipelines.create", 201), ("pipelines.update", 200), ("pipelines.delete", 204)):
    EXPECTED[_endpoint] = {
        **UNAUTHENTICATED,
        **{p: (_ok if p in WRITERS else 403) for p in PRINCIPALS[6:]},
    }

AUDIT_READERS = {"auditor": 200, "service": 200}
for _endpoint in ("audit.list", "audit.detail"):
    EXPECTED[_endpoint] = {
        **UNAUTHENTICATED,
        **{p: 403 for p in PRINCIPALS[6:] if p not in AUDIT_READERS},
        **AUDIT_READERS,
    }

# Webhooks: submitters manage their own subscriptions (another's is 404), operators and the service
# everyone's; a key needs webhooks:read or webhooks:write, which none of the table's keys has.
WEBHOOK_OK = {
    "jobs.deliveries": 200,
    "webhooks.list": 200,
    "webhooks.create": 201,
    "webhooks.detail": 200,
    "webhooks.update": 200,
    "webhooks.delete": 204,
    "webhooks.subscription_deliveries": 200,
    "webhooks.test": 200,
    "webhooks.rotate_secret": 200,
    "webhooks.deliveries": 200,
    "webhooks.delivery": 200,
    "webhooks.redeliver": 202,
}
OWN_LISTS = {"webhooks.list", "webhooks.create", "webhooks.deliveries"}
for _endpoint, _ok in WEBHOOK_OK.items():
    EXPECTED[_endpoint] = {
        **UNAUTHENTICATED,
        **{p: 403 for p in PRINCIPALS[6:]},
        "owner": _ok,
        "operator": _ok,
        "service": _ok,
        "other_user": _ok if _endpoint in OWN_LISTS else 404,
    }

CASES = [(endpoint, principal, EXPECTED[endpoint][principal]) for endpoint in ENDPOINTS for principal in PRINCIPALS]


@pytest.fixture
def world(db, demo_pipelines, settings):
    """An owner with a completed job, a key to revoke and a webhook subscription with a delivery, plus everyone else."""
    settings.ALLOW_PRIVATE_NETWORK_URLS = True  # the subscription's endpoint is a closed port on 127.0.0.1
    owner = grant_role(UserFactory(username="owner"), "submitter")
    job = JobFactory(pipeline=demo_pipelines["sample_task"], user_id=owner.pk, input_data={"n": 1})
    job.pipeline_config = {"stages": [{"name": "echo", "type": "echo", "params": {}}]}
    job.save()
    job_run(job_id=str(job.pk))
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED
    credentials.api_key_for(owner)
    target_key = ApiKey.objects.filter(user=owner).latest("created")
    subscription = credentials.webhook_subscription_for(owner, "http://127.0.0.1:9/hook", ["job.completed"])
    event = JobEvent.objects.create(job=job, type="job.completed", notify=True, created_at=job.completed_at)
    (delivery_id,) = webhook_events_dispatch(event_ids=[event.pk])
    return {
        "owner": owner,
        "other": grant_role(UserFactory(username="other"), "submitter"),
        "operator": grant_role(UserFactory(username="op"), "operator"),
        "nobody": UserFactory(username="nobody"),
        "auditor": grant_role(UserFactory(username="aud"), "auditor"),
        "job": job,
        "key": target_key,
        "audit_row": AuditLog.objects.latest("id"),
        "subscription": subscription,
        "delivery_id": delivery_id,
    }


def headers_for(principal: str, world) -> dict:
    owner = world["owner"]
    match principal:
        case "none":
            return {}
        case "wrong_secret":
            return {"HTTP_X_API_SECRET": "not-" + settings.JOBSITE_API_SECRET}
        case "expired_jwt":
            return credentials.expired_jwt_for(owner)
        case "alg_none_jwt":
            return credentials.alg_none_jwt_for(owner)
        case "revoked_key":
            return credentials.api_key_for(owner, revoked=True)
        case "expired_key":
            return credentials.expired_api_key_for(owner)
        case "key_without_scope":
            return credentials.api_key_for(owner, scopes=["audit:read"])
        case "user_without_permission":
            return credentials.jwt_for(world["nobody"])
        case "other_user":
            return credentials.jwt_for(world["other"])
        case "owner":
            return credentials.jwt_for(owner)
        case "owner_key":
            return credentials.api_key_for(owner, scopes=["jobs:create", "jobs:read"], header="X-API-Key")
        case "operator":
            return credentials.jwt_for(world["operator"])
        case "auditor":
            return credentials.jwt_for(world["auditor"])
        case "service":
            return {"HTTP_X_API_SECRET": settings.JOBSITE_API_SECRET}
        case "create_only_key":
            return credentials.api_key_for(owner, scopes=["jobs:create"])
        case "pipelines_read_key":
            return credentials.api_key_for(world["operator"], scopes=["pipelines:read"])
        case "owner_pipelines_read_key":  # the scope does not give a submitter what the role does not
            return credentials.api_key_for(owner, scopes=["pipelines:read"])
    raise AssertionError(principal)


@pytest.mark.parametrize(("endpoint", "principal", "expected"), CASES, ids=[f"{e}-{p}" for e, p, _ in CASES])
def test_access(endpoint, principal, expected, world):
    method, template, body = ENDPOINTS[endpoint]
    url = template.format(
        job=world["job"].pk,
        key=world["key"].prefix,
        audit=world["audit_row"].pk,
        subscription=world["subscription"].pk,
        delivery=world["delivery_id"],
    )
    headers = headers_for(principal, world)

    response = getattr(APIClient(), method)(url, body, format="json", **headers)

    assert response.status_code == expected, response.content
    if expected >= 400:
        body = response.json()
        # The jobs list is also the LLM workflow service's: its errors add the service's `detail`.
        seed_detail = {"detail"} if endpoint == "jobs.list" else set()
        assert set(body) == {"error", "message", "details", "request_id"} | seed_detail
        assert body["request_id"] == response["X-Request-ID"]


CONFIG_CASES = [(e, p) for e in ("pipelines.list", "pipelines.detail") for p in PRINCIPALS[6:]]


@pytest.mark.parametrize(("endpoint", "principal"), CONFIG_CASES, ids=[f"{e}-{p}" for e, p in CONFIG_CASES])
def test_pipeline_configs_only_for_pipelines_read(endpoint, principal, world):
    _, template, _ = ENDPOINTS[endpoint]

    response = APIClient().get(template, **headers_for(principal, world))

    body = response.json()
    pipeline = body["results"][0] if endpoint == "pipelines.list" else body
    if principal in CONFIG_READERS:
        assert pipeline["config"]["stages"] == [{"name": "work", "type": "sample_task", "params": {"seconds": 0.2}}]
    else:
        assert set(pipeline) == OUTLINE
        assert pipeline["stages"] == [{"name": "work", "type": "sample_task"}]


def test_other_users_jobs_never_appear_in_their_list(world):
    client = APIClient()
    response = client.get("/api/v1/jobs/", **credentials.jwt_for(world["other"]))
    assert response.json()["total"] == 0

    response = client.get(f"/api/v1/jobs/?user_id={world['owner'].pk}", **credentials.jwt_for(world["other"]))
    assert response.json()["total"] == 0


def test_revoke_leaves_the_key_revoked_and_unusable(world):
    owner_headers = credentials.jwt_for(world["owner"])
    key_headers = credentials.api_key_for(world["owner"], scopes=["jobs:read"])
    client = APIClient()
    assert client.get("/api/v1/jobs/", **key_headers).status_code == 200
    prefix = key_headers["HTTP_AUTHORIZATION"].split()[1].split(".")[0]

    assert client.delete(f"/api/v1/auth/api-keys/{prefix}/", **owner_headers).status_code == 204

    assert ApiKey.objects.get(prefix=prefix).revoked is True
    assert client.get("/api/v1/jobs/", **key_headers).status_code == 401
