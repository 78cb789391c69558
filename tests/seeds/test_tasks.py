"""The task API's contract (seed 003), as its clients call it: seed-contracts.md, part C.

`/tasks` without a prefix (and the same under `/api/v1/tasks/`); FastAPI's
422 for invalid input; statuses `not_started`, `success`, `error`; a
duplicate submission adds no row and raises `max_retries` by one. The task
API stated no authentication; jobsite asks for a credential on every
endpoint, so these clients send the shared secret.
"""

import threading
import uuid
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from audit.models import AuditLog
from jobs.models import Job, JobResult, JobStatus
from jobs.run import job_run
from pipelines.models import Pipeline
from pipelines.services import pipeline_ensure
from tests import credentials
from tests.factories import JobFactory

from .conftest import REQUEST_ID, assert_request_id, fastapi_items, locs

TASK = "ExampleDatabaseTask"
SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "count": {"type": "integer"}},
    "required": ["name"],
}
TASK_FIELDS = {"id", "task_name", "task_payload", "task_payload_prefix", "status", "result_data", "max_retries"}
# jobsite's status -> the task API's: the table the README documents.
STATUS_TABLE = {
    "pending": "not_started",
    "scheduled": "not_started",
    "queued": "not_started",
    "processing": "not_started",
    "retrying": "not_started",
    "cancelling": "not_started",
    "completed": "success",
    "failed": "error",
    "cancelled": "error",
}
SECRET = {"HTTP_X_API_SECRET": settings.JOBSITE_API_SECRET}


@pytest.fixture
def tasks(db):
    """Two registered tasks: one with a payload model, and an inactive one that is not a task."""
    pipeline_ensure(
        name=TASK,
        config={"input_schema": SCHEMA, "stages": [{"name": "store", "type": "echo"}], "max_attempts": 3},
    )
    pipeline_ensure(name="OtherTask", config={"stages": [{"name": "store", "type": "echo"}]})
    retired, _ = pipeline_ensure(name="RetiredTask", config={"stages": [{"name": "store", "type": "echo"}]})
    retired.is_active = False
    retired.save()


def call(client, method, path, body=None, auth=None, **headers):
    """Call as the task API's client; `auth` replaces the shared secret."""
    auth = SECRET if auth is None else auth
    return getattr(client, method)(path, body, format="json", HTTP_X_REQUEST_ID=REQUEST_ID, **auth, **headers)


def create(client, payload, task=TASK, **headers):
    return call(client, "post", f"/tasks/{task}", payload, **headers)


def ok(response, status_code=200) -> dict:
    assert response.status_code == status_code, response.content
    return response.json()


# -- POST /tasks/{task_name} ----------------------------------------------------------------


def test_a_new_task_is_created_not_started_with_its_payload(client, tasks):
    payload = {"name": "first", "count": 2}

    body = ok(create(client, payload), 201)

    assert body["duplicate"] is False
    assert body["message"]
    task = body["task"]
    assert set(task) >= TASK_FIELDS
    assert (task["task_name"], task["task_payload"], task["status"]) == (TASK, payload, "not_started")
    assert task["result_data"] is None
    assert task["max_retries"] == 2
    job = Job.objects.get()
    assert str(job.pk) == task["id"]
    assert (job.pipeline.name, job.input_data) == (TASK, payload)


def test_the_task_id_is_a_uuid_string(client, tasks):
    task_id = ok(create(client, {"name": "x"}), 201)["task"]["id"]

    assert str(uuid.UUID(task_id)) == task_id
    assert ok(call(client, "get", f"/tasks/{task_id}"))["id"] == task_id


def test_a_duplicate_task_returns_the_existing_one_without_a_new_row_and_one_more_retry(client, tasks):
    first = ok(create(client, {"name": "same", "count": 1}), 201)["task"]

    again = ok(create(client, {"count": 1, "name": "same"}))  # the same payload, keys in another order

    assert again["duplicate"] is True
    assert "uplicate" in again["message"]
    assert again["task"]["id"] == first["id"]
    assert again["task"]["task_payload_prefix"] == first["task_payload_prefix"]
    assert again["task"]["max_retries"] == first["max_retries"] + 1
    assert Job.objects.count() == 1
    assert Job.objects.get().max_attempts == 4
    assert ok(create(client, {"name": "same", "count": 1}))["task"]["max_retries"] == first["max_retries"] + 2


@pytest.mark.django_db(transaction=True)
def test_concurrent_identical_tasks_make_one_row_and_each_duplicate_adds_a_retry(tasks):
    barrier = threading.Barrier(4)
    answers = []

    def submit():
        try:
            barrier.wait()
            response = create(APIClient(), {"name": "race"})
            answers.append((response.status_code, response.json()["task"]["id"]))
        finally:
            connection.close()

    threads = [threading.Thread(target=submit) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(code for code, _ in answers) == [200, 200, 200, 201]
    assert len({task_id for _, task_id in answers}) == 1
    assert Job.objects.get().max_attempts == 3 + 3


def test_another_payload_or_task_is_not_a_duplicate(client, tasks):
    ok(create(client, {"name": "a"}), 201)

    assert ok(create(client, {"name": "b"}), 201)["duplicate"] is False
    assert ok(create(client, {"name": "a"}, task="OtherTask"), 201)["duplicate"] is False
    assert Job.objects.count() == 3


def test_duplicates_are_per_owner(client, tasks, user):
    ok(create(client, {"name": "shared"}), 201)

    mine = create(client, {"name": "shared"}, auth=credentials.jwt_for(user))

    assert ok(mine, 201)["duplicate"] is False
    assert Job.objects.count() == 2


def test_a_task_may_be_submitted_again_once_the_earlier_one_is_gone(client, tasks):
    ok(create(client, {"name": "once"}), 201)
    Job.objects.all().delete()

    assert ok(create(client, {"name": "once"}), 201)["duplicate"] is False


def test_an_idempotency_key_header_takes_the_place_of_the_content_key(client, tasks):
    first = ok(create(client, {"name": "keyed"}, HTTP_IDEMPOTENCY_KEY="order-7"), 201)["task"]
    again = ok(create(client, {"name": "keyed"}, HTTP_IDEMPOTENCY_KEY="order-7"))
    reused = create(client, {"name": "other"}, HTTP_IDEMPOTENCY_KEY="order-7")

    assert again["duplicate"] is True and again["task"]["id"] == first["id"]
    assert reused.status_code == 422
    assert assert_request_id(reused)["error"] == "idempotency_key_reused"
    assert Job.objects.count() == 1


@pytest.mark.parametrize("task", ["NoSuchTask", "RetiredTask", "x" * 101])
def test_an_unknown_task_name_is_a_422_listing_the_registered_ones(client, tasks, task):
    response = create(client, {"name": "x"}, task=task)

    assert response.status_code == 422
    body = assert_request_id(response)
    [item] = fastapi_items(body)
    assert (item["loc"], item["type"]) == (["path", "task_name"], "enum")
    assert "'ExampleDatabaseTask'" in item["msg"] and "'OtherTask'" in item["msg"]
    assert body["details"]["valid_values"] == ["ExampleDatabaseTask", "OtherTask"]
    assert not Job.objects.exists()


@pytest.mark.parametrize(
    ("payload", "where"),
    [
        pytest.param({}, "name", id="missing-field"),
        pytest.param({"name": 5}, "name", id="wrong-type"),
        pytest.param({"name": "x", "count": "two"}, "count", id="wrong-type-2"),
        pytest.param(["name"], None, id="not-an-object"),
        pytest.param("name", None, id="a-string"),
    ],
)
def test_a_payload_the_task_refuses_is_a_422(client, tasks, payload, where):
    response = create(client, payload)

    assert response.status_code == 422
    items = fastapi_items(assert_request_id(response))
    assert all(item["loc"][0] == "body" for item in items)
    if where:
        assert any(where in item["msg"] for item in items)
    assert not Job.objects.exists()


def test_creating_without_credentials_is_a_401(client, tasks):
    response = client.post(f"/tasks/{TASK}", {"name": "x"}, format="json", HTTP_X_REQUEST_ID=REQUEST_ID)

    assert response.status_code == 401
    assert assert_request_id(response)["detail"]


def test_submissions_and_duplicates_are_audited(client, tasks):
    task_id = ok(create(client, {"name": "audited"}), 201)["task"]["id"]
    ok(create(client, {"name": "audited"}))

    rows = AuditLog.objects.filter(resource_id=task_id).order_by("id")
    assert [row.action for row in rows] == ["jobs.job.create", "jobs.job.grant_attempt"]
    assert {row.request_id for row in rows} == {REQUEST_ID}


# -- GET /tasks/{task_id} -----------------------------------------------------------------------


def test_a_task_is_the_full_database_task_with_its_result_parsed(client, tasks):
    task_id = ok(create(client, {"name": "run me", "count": 3}), 201)["task"]["id"]
    job_run(job_id=task_id)

    task = ok(call(client, "get", f"/tasks/{task_id}"))

    assert set(task) >= TASK_FIELDS
    assert task["status"] == "success"
    assert task["result_data"] == {"name": "run me", "count": 3}
    assert task["result_data"] == JobResult.objects.get(job_id=task_id).result
    assert task["task_payload"] == {"name": "run me", "count": 3}


def test_an_unknown_task_is_a_404(client, tasks):
    response = call(client, "get", f"/tasks/{uuid.uuid4()}")

    assert response.status_code == 404
    assert assert_request_id(response)["detail"] == "Task not found."


@pytest.mark.parametrize("task_id", ["1", "42", "abc"])
def test_an_integer_or_other_non_uuid_id_is_a_422(client, tasks, task_id):
    response = call(client, "get", f"/tasks/{task_id}")

    assert response.status_code == 422
    assert locs(assert_request_id(response)) == [["path", "task_id"]]


@pytest.mark.parametrize(("job_status", "task_status"), sorted(STATUS_TABLE.items()))
def test_every_jobsite_status_reads_as_one_task_status(client, tasks, job_status, task_status):
    job = JobFactory(pipeline=Pipeline.objects.get(name=TASK), status=job_status)

    task = ok(call(client, "get", f"/tasks/{job.pk}"))

    assert (task["status"], task["job_status"]) == (task_status, job_status)


def test_another_users_task_is_a_404(client, tasks, user, other_user):
    theirs = JobFactory(user_id=other_user.pk)

    response = call(client, "get", f"/tasks/{theirs.pk}", auth=credentials.jwt_for(user))

    assert response.status_code == 404


# -- GET /tasks ---------------------------------------------------------------------------------


@pytest.fixture
def one_task_per_status(tasks):
    pipeline = Pipeline.objects.get(name=TASK)
    return {status: str(JobFactory(pipeline=pipeline, status=status).pk) for status in STATUS_TABLE}


@pytest.mark.parametrize("task_status", ["not_started", "success", "error"])
def test_the_status_filter_speaks_the_task_vocabulary(client, one_task_per_status, task_status):
    body = ok(call(client, "get", "/tasks", {"status": task_status}))

    expected = {one_task_per_status[s] for s, mapped in STATUS_TABLE.items() if mapped == task_status}
    assert {task["id"] for task in body["tasks"]} == expected
    assert body["total"] == len(expected)
    assert {task["status"] for task in body["tasks"]} == {task_status}


@pytest.mark.parametrize("status", ["completed", "running", "SUCCESS", "done"])
def test_a_status_outside_the_task_vocabulary_is_a_422(client, tasks, status):
    response = call(client, "get", "/tasks", {"status": status})

    assert response.status_code == 422
    body = assert_request_id(response)
    assert locs(body) == [["query", "status"]]
    assert body["details"]["valid_values"] == ["not_started", "success", "error"]


def test_the_task_name_filter_matches_exactly(client, tasks):
    ok(create(client, {"name": "a"}), 201)
    ok(create(client, {"name": "b"}, task="OtherTask"), 201)

    body = ok(call(client, "get", "/tasks", {"task_name": "OtherTask"}))

    assert [task["task_name"] for task in body["tasks"]] == ["OtherTask"]
    assert ok(call(client, "get", "/tasks", {"task_name": "Other"}))["total"] == 0


def test_the_list_is_a_task_list_response_newest_first(client, tasks):
    ids = [ok(create(client, {"name": str(n)}), 201)["task"]["id"] for n in range(3)]

    body = ok(call(client, "get", "/tasks"))

    assert set(body) == {"tasks", "total", "page", "page_size", "pages", "total_estimated"}
    assert (body["total"], body["page"], body["page_size"], body["pages"]) == (3, 1, 50, 1)
    assert [task["id"] for task in body["tasks"]] == ids[::-1]
    assert TASK_FIELDS - {"result_data"} <= set(body["tasks"][0])


@pytest.fixture
def sixty_tasks(tasks):
    pipeline = Pipeline.objects.get(name=TASK)
    now = timezone.now()
    jobs = [JobFactory.build(pipeline=pipeline, created_at=now - timedelta(seconds=n)) for n in range(60)]
    Job.objects.bulk_create(jobs)
    return [str(job.pk) for job in jobs]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, (0, 50)),
        ({"page": "1"}, (0, 50)),
        ({"page": "2"}, (50, 60)),
        ({"page_size": "100"}, (0, 60)),
        ({"page_size": "1"}, (0, 1)),
        ({"page": "3", "page_size": "25"}, (50, 60)),
        ({"page": "4", "page_size": "25"}, (60, 60)),
        ({"page": "99"}, (60, 60)),
    ],
)
def test_page_and_page_size(client, sixty_tasks, params, expected):
    body = ok(call(client, "get", "/tasks", params))

    start, stop = expected
    assert [task["id"] for task in body["tasks"]] == sixty_tasks[start:stop]
    assert body["total"] == 60
    assert (body["page"], body["page_size"]) == (int(params.get("page", 1)), int(params.get("page_size", 50)))


@pytest.mark.parametrize(
    ("param", "value"),
    [("page", "0"), ("page", "-1"), ("page", "x"), ("page_size", "0"), ("page_size", "101"), ("page_size", "1.5")],
)
def test_page_or_page_size_out_of_bounds_is_a_422(client, tasks, param, value):
    response = call(client, "get", "/tasks", {param: value})

    assert response.status_code == 422
    assert locs(assert_request_id(response)) == [["query", param]]


@pytest.mark.parametrize("path", ["/tasks", "/tasks/stats"])
def test_an_unknown_query_parameter_is_a_400(client, tasks, path):
    response = call(client, "get", path, {"limit": "10"})

    assert response.status_code == 400
    assert "limit" in assert_request_id(response)["details"]


@pytest.mark.parametrize("path", ["/tasks/", "/api/v1/tasks", "/api/v1/tasks/"])
def test_the_list_answers_with_a_trailing_slash_and_under_api_v1(client, tasks, path):
    ok(create(client, {"name": "x"}), 201)

    assert ok(call(client, "get", path))["total"] == 1


def test_a_task_is_submitted_under_api_v1_too(client, tasks):
    body = ok(call(client, "post", f"/api/v1/tasks/{TASK}", {"name": "v1"}), 201)

    assert ok(call(client, "get", f"/api/v1/tasks/{body['task']['id']}/"))["task_payload"] == {"name": "v1"}


# -- POST /tasks/{task_name}/batch ----------------------------------------------------------------


def test_a_batch_creates_the_valid_payloads_and_reports_each_one(client, tasks):
    existing = ok(create(client, {"name": "old"}), 201)["task"]
    payloads = [{"name": "a"}, {"count": 1}, {"name": "old"}, "not an object", {"name": "a"}, {"name": "b"}]

    body = ok(call(client, "post", f"/tasks/{TASK}/batch", payloads))

    results = body["results"]
    assert [item["index"] for item in results] == list(range(6))
    assert [item["success"] for item in results] == [True, False, True, False, True, True]
    assert [item["duplicate"] for item in results] == [False, False, True, False, True, False]
    assert results[2]["id"] == existing["id"]
    assert results[4]["id"] == results[0]["id"]
    assert results[1]["id"] is None and results[1]["errors"][0]["loc"][:2] == ["body", 1]
    assert results[3]["errors"][0]["loc"][:2] == ["body", 3]
    assert {item["status"] for item in results if item["success"]} == {"not_started"}
    assert (body["created"], body["duplicates"], body["failed"]) == (2, 2, 2)
    assert Job.objects.count() == 3
    assert Job.objects.get(pk=existing["id"]).max_attempts == 4


@pytest.mark.parametrize("payloads", [[], {"name": "x"}, "x", [{"name": "x"}] * 501])
def test_a_batch_that_is_not_a_list_of_1_to_500_payloads_is_a_422(client, tasks, payloads):
    response = call(client, "post", f"/tasks/{TASK}/batch", payloads)

    assert response.status_code == 422
    assert locs(assert_request_id(response)) == [["body"]]
    assert not Job.objects.exists()


def test_a_batch_of_an_unknown_task_is_a_422(client, tasks):
    response = call(client, "post", "/tasks/NoSuchTask/batch", [{"name": "x"}])

    assert response.status_code == 422
    assert locs(assert_request_id(response)) == [["path", "task_name"]]


# -- DELETE /tasks/{id} and PATCH /tasks/{id}/retry ------------------------------------------------


def test_delete_cancels_a_waiting_task(client, tasks):
    task_id = ok(create(client, {"name": "stop"}), 201)["task"]["id"]

    task = ok(call(client, "delete", f"/tasks/{task_id}"))

    assert (task["status"], task["job_status"]) == ("error", "cancelled")
    assert Job.objects.get(pk=task_id).status == JobStatus.CANCELLED


def test_delete_of_a_finished_task_is_a_409(client, tasks):
    task_id = ok(create(client, {"name": "done"}), 201)["task"]["id"]
    job_run(job_id=task_id)

    response = call(client, "delete", f"/tasks/{task_id}")

    assert response.status_code == 409
    assert assert_request_id(response)["detail"]


def test_retry_sends_a_failed_task_back(client, tasks):
    task_id = ok(create(client, {"name": "again"}), 201)["task"]["id"]
    Job.objects.filter(pk=task_id).update(status=JobStatus.FAILED, error_message="boom")

    task = ok(call(client, "patch", f"/tasks/{task_id}/retry"))

    assert (task["status"], task["error_message"]) == ("not_started", None)
    job_run(job_id=task_id)
    assert ok(call(client, "get", f"/tasks/{task_id}"))["status"] == "success"


@pytest.mark.parametrize("job_status", ["queued", "completed"])
def test_retry_of_a_task_that_has_not_failed_is_a_409(client, tasks, job_status):
    task_id = ok(create(client, {"name": "fine"}), 201)["task"]["id"]
    Job.objects.filter(pk=task_id).update(status=job_status)

    response = call(client, "patch", f"/tasks/{task_id}/retry")

    assert response.status_code == 409


@pytest.mark.parametrize(("method", "suffix"), [("delete", ""), ("patch", "/retry")])
def test_managing_an_unknown_task_is_a_404(client, tasks, method, suffix):
    response = call(client, method, f"/tasks/{uuid.uuid4()}{suffix}")

    assert response.status_code == 404
    assert_request_id(response)


# -- GET /tasks/stats -------------------------------------------------------------------------------


def test_stats_give_the_success_rate_and_average_processing_time(client, tasks):
    pipeline = Pipeline.objects.get(name=TASK)
    for duration in (100, 300):
        JobFactory(pipeline=pipeline, status=JobStatus.COMPLETED, duration_ms=duration)
    JobFactory(pipeline=pipeline, status=JobStatus.FAILED)
    JobFactory(pipeline=pipeline, status=JobStatus.CANCELLED)
    JobFactory(pipeline=pipeline, status=JobStatus.QUEUED)

    stats = ok(call(client, "get", "/tasks/stats"))

    assert stats["total"] == 5
    assert stats["counts"] == {"not_started": 1, "success": 2, "error": 2}
    assert stats["success_rate"] == 0.5
    assert stats["avg_processing_time_ms"] == 200.0
    [per_task] = stats["tasks"]
    assert (per_task["task_name"], per_task["total"], per_task["success_rate"]) == (TASK, 5, 0.5)


def test_stats_is_not_taken_for_a_task_id(client, tasks):
    assert ok(call(client, "get", "/tasks/stats/"))["total"] == 0


def test_stats_take_a_window(client, tasks):
    job = JobFactory(pipeline=Pipeline.objects.get(name=TASK), status=JobStatus.COMPLETED, duration_ms=5)
    Job.objects.filter(pk=job.pk).update(created_at=timezone.now() - timedelta(days=3))

    assert ok(call(client, "get", "/tasks/stats"))["total"] == 0
    assert ok(call(client, "get", "/tasks/stats", {"window": "7d"}))["total"] == 1
    bad = call(client, "get", "/tasks/stats", {"window": "1y"})
    assert bad.status_code == 422
    assert locs(assert_request_id(bad)) == [["query", "window"]]


def test_the_browsable_api_shows_the_task_list_and_its_filters(client, tasks, operator_user):
    client.force_login(operator_user)
    ok(create(client, {"name": "browsed"}), 201)

    response = client.get("/tasks", HTTP_ACCEPT="text/html")

    assert response.status_code == 200
    assert "filtersModal" in response.content.decode()


def test_a_job_submitted_through_jobsites_own_api_is_not_a_duplicate_task(client, tasks):
    native = client.post(
        "/api/v1/jobs/", {"pipeline": TASK, "input_data": {"name": "n"}}, format="json", **SECRET
    ).json()

    body = ok(create(client, {"name": "n"}), 201)

    assert body["task"]["id"] != native["job_id"]
    assert body["duplicate"] is False
