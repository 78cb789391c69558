"""Every /api/v1/ endpoint against every kind of caller.

When an endpoint is added, it joins ENDPOINTS and EXPECTED.
"""

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from accounts.models import ApiKey
from audit.models import AuditLog
from jobs.models import JobStatus
from jobs.services import job_run
from tests import credentials
from tests.conftest import grant_role
from tests.factories import JobFactory, UserFactory

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
    },
}

# Reading and submitting follow jobs.list / jobs.create; cancel and retry need the operator's
# permissions (the job in the table is completed: cancel and retry answer 409 once allowed).
EXPECTED["jobs.stats"] = EXPECTED["jobs.list"]
EXPECTED["jobs.validate"] = {
    **EXPECTED["jobs.create"],
    **{p: 200 for p, c in EXPECTED["jobs.create"].items() if c == 201},
}
EXPECTED["jobs.batch"] = EXPECTED["jobs.validate"]
MANAGERS = {"operator": 409, "service": 409}
for _endpoint in ("jobs.cancel", "jobs.delete", "jobs.retry"):
    EXPECTED[_endpoint] = {**UNAUTHENTICATED, **{p: 403 for p in PRINCIPALS[6:] if p not in MANAGERS}, **MANAGERS}

# Pipelines: everyone signed in reads them (a key needs no particular scope); operators write.
READERS = {p: 200 for p in PRINCIPALS[6:]}
EXPECTED["pipelines.list"] = EXPECTED["pipelines.detail"] = EXPECTED["stages.list"] = {**UNAUTHENTICATED, **READERS}
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

CASES = [(endpoint, principal, EXPECTED[endpoint][principal]) for endpoint in ENDPOINTS for principal in PRINCIPALS]


@pytest.fixture
def world(db, demo_pipelines):
    """An owner with a completed job and a key to revoke, plus everyone else."""
    owner = grant_role(UserFactory(username="owner"), "submitter")
    job = JobFactory(pipeline=demo_pipelines["sample_task"], user_id=owner.pk, input_data={"n": 1})
    job.pipeline_config = {"stages": [{"name": "echo", "type": "echo", "params": {}}]}
    job.save()
    job_run(job_id=str(job.pk))
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED
    credentials.api_key_for(owner)
    target_key = ApiKey.objects.filter(user=owner).latest("created")
    return {
        "owner": owner,
        "other": grant_role(UserFactory(username="other"), "submitter"),
        "operator": grant_role(UserFactory(username="op"), "operator"),
        "nobody": UserFactory(username="nobody"),
        "auditor": grant_role(UserFactory(username="aud"), "auditor"),
        "job": job,
        "key": target_key,
        "audit_row": AuditLog.objects.latest("id"),
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
    raise AssertionError(principal)


@pytest.mark.parametrize(("endpoint", "principal", "expected"), CASES, ids=[f"{e}-{p}" for e, p, _ in CASES])
def test_access(endpoint, principal, expected, world):
    method, template, body = ENDPOINTS[endpoint]
    url = template.format(job=world["job"].pk, key=world["key"].prefix, audit=world["audit_row"].pk)
    headers = headers_for(principal, world)

    response = getattr(APIClient(), method)(url, body, format="json", **headers)

    assert response.status_code == expected, response.content
    if expected >= 400:
        body = response.json()
        assert set(body) == {"error", "message", "details", "request_id"}
        assert body["request_id"] == response["X-Request-ID"]


def test_other_users_jobs_never_appear_in_their_list(world):
    client = APIClient()
    response = client.get("/api/v1/jobs/", **credentials.jwt_for(world["other"]))
    assert response.json()["count"] == 0

    response = client.get(f"/api/v1/jobs/?user_id={world['owner'].pk}", **credentials.jwt_for(world["other"]))
    assert response.json()["count"] == 0


def test_revoke_leaves_the_key_revoked_and_unusable(world):
    owner_headers = credentials.jwt_for(world["owner"])
    key_headers = credentials.api_key_for(world["owner"], scopes=["jobs:read"])
    client = APIClient()
    assert client.get("/api/v1/jobs/", **key_headers).status_code == 200
    prefix = key_headers["HTTP_AUTHORIZATION"].split()[1].split(".")[0]

    assert client.delete(f"/api/v1/auth/api-keys/{prefix}/", **owner_headers).status_code == 204

    assert ApiKey.objects.get(prefix=prefix).revoked is True
    assert client.get("/api/v1/jobs/", **key_headers).status_code == 401
