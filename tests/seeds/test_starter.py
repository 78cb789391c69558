"""The starter job API's contract (seed 004), as its clients call it: seed-contracts.md, part D.

`/jobs` without a prefix, a JWT on every call, the caller's own jobs only;
`{"job_type", "job_parameters"}` in; errors carry `request_id`.
"""

import uuid

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from jobs.models import Job, JobStatus
from jobs.run import job_run
from tests import credentials
from tests.factories import JobFactory, PipelineFactory

from .conftest import REQUEST_ID, assert_request_id, fastapi_items, locs

JOB_FIELDS = {"job_id", "job_type", "status", "user_id", "job_parameters", "created_at", "error_message"}


def call(client, method, path, body=None, auth=None):
    return getattr(client, method)(path, body, format="json", HTTP_X_REQUEST_ID=REQUEST_ID, **(auth or {}))


@pytest.fixture
def alice(user):
    return credentials.jwt_for(user)


@pytest.fixture
def bob(other_user):
    return credentials.jwt_for(other_user)


def ok(response, status_code=200) -> dict:
    assert response.status_code == status_code, response.content
    return response.json()


# -- POST /jobs ---------------------------------------------------------------------------------


def test_creating_a_sample_task_files_it_under_the_caller(client, demo_pipelines, user, alice):
    body = ok(call(client, "post", "/jobs", {"job_type": "sample_task", "job_parameters": {}}, alice), 201)

    assert set(body) >= JOB_FIELDS
    assert (body["job_type"], body["job_parameters"], body["user_id"]) == ("sample_task", {}, str(user.pk))
    assert body["status"] in ("pending", "queued")
    job = Job.objects.get(pk=body["job_id"])
    assert (job.pipeline.name, job.input_data, job.user_id) == ("sample_task", {}, user.pk)


def test_job_parameters_are_the_pipelines_input(client, demo_pipelines, alice):
    body = ok(
        call(client, "post", "/jobs", {"job_type": "text-analysis", "job_parameters": {"text": "Hi."}}, alice), 201
    )
    job_run(job_id=body["job_id"])

    job = ok(call(client, "get", f"/jobs/{body['job_id']}", auth=alice))

    assert (job["status"], job["job_parameters"]) == ("completed", {"text": "Hi."})
    assert job["result"]["words"] == 1


def test_the_same_job_twice_is_two_jobs(client, demo_pipelines, alice):
    body = {"job_type": "sample_task", "job_parameters": {"n": 1}}

    first = ok(call(client, "post", "/jobs", body, alice), 201)
    second = ok(call(client, "post", "/jobs", body, alice), 201)

    assert first["job_id"] != second["job_id"]


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        pytest.param({"job_parameters": {}}, ["body", "job_type"], id="job_type-missing"),
        pytest.param({"job_type": "no_such_type"}, ["body", "job_type"], id="job_type-unknown"),
        pytest.param({"job_type": "sample_task", "job_parameters": []}, ["body", "job_parameters"], id="list"),
        pytest.param({"job_type": "sample_task", "job_parameters": "x"}, ["body", "job_parameters"], id="string"),
        pytest.param({"job_type": "text-analysis", "job_parameters": {}}, ["body", "job_parameters"], id="schema"),
        pytest.param(["sample_task"], ["body"], id="not-an-object"),
    ],
)
def test_an_invalid_job_is_a_422_with_the_request_id(client, demo_pipelines, alice, body, loc):
    response = call(client, "post", "/jobs", body, alice)

    assert response.status_code == 422, response.content
    assert loc in locs(assert_request_id(response))
    assert not Job.objects.exists()


def test_an_unknown_job_type_lists_the_job_types(client, demo_pipelines, alice):
    response = call(client, "post", "/jobs", {"job_type": "no_such_type"}, alice)

    [item] = fastapi_items(response.json())
    assert item["type"] == "enum"
    assert response.json()["details"]["valid_values"] == ["sample_task", "text-analysis"]


# -- authentication -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"), [("get", "/jobs"), ("post", "/jobs"), ("get", "/jobs/8ed4e648-42d8-44bc-be0c-799f727c8faa")]
)
@pytest.mark.parametrize("sent", ["nothing", "expired", "forged", "shared secret"])
def test_every_call_needs_a_valid_jwt(client, demo_pipelines, user, method, path, sent):
    auth = {
        "nothing": {},
        "expired": credentials.expired_jwt_for(user),
        "forged": credentials.foreign_key_jwt_for(user),
        "shared secret": {"HTTP_X_API_SECRET": settings.JOBSITE_API_SECRET},
    }[sent]

    response = call(client, method, path, {"job_type": "sample_task", "job_parameters": {}}, auth)

    assert response.status_code == 401
    assert assert_request_id(response)["detail"]
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert not Job.objects.exists()


def test_a_user_without_the_submitter_role_is_a_403(client, demo_pipelines, no_role_user):
    response = call(client, "post", "/jobs", {"job_type": "sample_task"}, credentials.jwt_for(no_role_user))

    assert response.status_code == 403
    assert_request_id(response)


# -- GET /jobs and GET /jobs/{job_id}: the caller's jobs only ------------------------------------


def test_the_list_holds_only_the_callers_jobs_even_for_an_operator(client, db, user, operator_user, alice):
    mine = JobFactory(user_id=user.pk)
    JobFactory(user_id=operator_user.pk)
    JobFactory(user_id=None)

    body = ok(call(client, "get", "/jobs", auth=alice))
    operators = ok(call(client, "get", "/jobs", auth=credentials.jwt_for(operator_user)))

    assert [row["job_id"] for row in body["jobs"]] == [str(mine.pk)]
    assert {"jobs", "total", "limit", "offset"} <= set(body)
    assert (body["total"], body["limit"], body["offset"]) == (1, 50, 0)
    assert set(body["jobs"][0]) >= JOB_FIELDS
    assert operators["total"] == 1


def test_the_starters_calls_are_audited_as_job_operations(client, db, user, alice):
    from audit.models import AuditLog

    ok(call(client, "get", "/jobs", {"status": "failed"}, alice))

    row = AuditLog.objects.get(action="jobs.job.list")
    assert (row.principal, row.request_id, row.request_details["path"]) == ("alice", REQUEST_ID, "/jobs")
    assert row.request_details["query"] == {"status": "failed"}


def test_another_users_job_is_a_404(client, db, other_user, alice):
    theirs = JobFactory(user_id=other_user.pk)

    response = call(client, "get", f"/jobs/{theirs.pk}", auth=alice)

    assert response.status_code == 404
    assert assert_request_id(response)["detail"] == "Job not found."


@pytest.mark.parametrize("job_id", [uuid.UUID(int=7), "not-a-uuid", "7"])
def test_an_unknown_job_is_a_404(client, db, alice, job_id):
    response = call(client, "get", f"/jobs/{job_id}", auth=alice)

    assert response.status_code == 404
    assert_request_id(response)


@pytest.fixture
def alices_jobs(user):
    resize, crop = PipelineFactory(name="resize"), PipelineFactory(name="crop")
    return {
        "resize-failed": JobFactory(pipeline=resize, user_id=user.pk, status=JobStatus.FAILED),
        "resize-pending": JobFactory(pipeline=resize, user_id=user.pk, status=JobStatus.PENDING),
        "crop-processing": JobFactory(pipeline=crop, user_id=user.pk, status=JobStatus.PROCESSING),
        "crop-completed": JobFactory(pipeline=crop, user_id=user.pk, status=JobStatus.COMPLETED),
    }


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status": "pending"}, {"resize-pending"}),
        ({"status": "processing"}, {"crop-processing"}),
        ({"status": "failed"}, {"resize-failed"}),
        ({"status": "completed"}, {"crop-completed"}),
        ({"job_type": "resize"}, {"resize-failed", "resize-pending"}),
        ({"job_type": "crop", "status": "completed"}, {"crop-completed"}),
        ({"job_type": "rotate"}, set()),
    ],
)
def test_status_and_job_type_filter_the_list(client, alices_jobs, alice, params, expected):
    body = ok(call(client, "get", "/jobs", params, alice))

    assert {row["job_id"] for row in body["jobs"]} == {str(alices_jobs[name].pk) for name in expected}


def test_limit_and_offset_page_the_list(client, alices_jobs, alice):
    everything = [row["job_id"] for row in ok(call(client, "get", "/jobs", auth=alice))["jobs"]]

    page = ok(call(client, "get", "/jobs", {"limit": "2", "offset": "1"}, alice))

    assert [row["job_id"] for row in page["jobs"]] == everything[1:3]
    assert (page["total"], page["limit"], page["offset"]) == (4, 2, 1)


@pytest.mark.parametrize(
    ("param", "value"), [("limit", "0"), ("limit", "201"), ("limit", "x"), ("offset", "-1"), ("status", "bogus")]
)
def test_a_parameter_out_of_bounds_is_a_422(client, db, alice, param, value):
    response = call(client, "get", "/jobs", {param: value}, alice)

    assert response.status_code == 422
    assert locs(assert_request_id(response)) == [["query", param]]


def test_an_unknown_query_parameter_is_a_400(client, db, alice):
    response = call(client, "get", "/jobs", {"page": "2"}, alice)

    assert response.status_code == 400
    assert "page" in assert_request_id(response)["details"]


def test_the_paths_answer_with_a_trailing_slash_too(client, demo_pipelines, alice):
    created = ok(call(client, "post", "/jobs/", {"job_type": "sample_task"}, alice), 201)

    assert ok(call(client, "get", f"/jobs/{created['job_id']}/", auth=alice))["job_id"] == created["job_id"]
    assert ok(call(client, "get", "/jobs/", auth=alice))["total"] == 1


# -- /health, /health/db, /docs -------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/health", "/health/db"])
def test_health_is_ok_without_a_token(db, path):
    response = APIClient().get(path)

    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_docs_redirect_to_the_api_documentation(db):
    response = APIClient().get("/docs")

    assert response.status_code == 302
    assert response["Location"] == "/api/docs/"
    assert APIClient().get(response["Location"]).status_code == 200


def test_an_unknown_path_under_jobs_is_a_json_404_with_the_request_id(client, db, alice):
    response = call(client, "get", f"/jobs/{uuid.uuid4()}/result", auth=alice)

    assert response.status_code == 404
    assert_request_id(response)
