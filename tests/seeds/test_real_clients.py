"""Each seed's client against real processes: gunicorn and a Dramatiq worker, over plain HTTP (`requests`).

The flows that need a worker: a job submitted the seed's way runs and its
result comes back the seed's way. The server is configured as the LLM
workflow service was: only `LLM_WEBHOOK_SECRET` is set. (The exhaustive
parameter, bound and error tables are the test-client tests beside this file.)
"""

import time
import uuid

import pytest
import requests
from django.conf import settings
from django.contrib.auth.hashers import PBKDF2PasswordHasher

from jobs.models import Job
from tests import credentials
from tests.conftest import grant_role
from tests.e2e.conftest import child_env, database_url, web_server, worker
from tests.factories import UserFactory

pytestmark = pytest.mark.e2e

LLM_SECRET = credentials.remember(f"llm-webhook-secret-{uuid.uuid4().hex}")
PASSWORD = credentials.remember("starter app password 42")
DROPDOWN = ["25", "50", "100", "200", "Today", "7 Days", "30 Days"]


@pytest.fixture
def server(transactional_db, demo_pipelines):
    """gunicorn and one worker that know the shared secret only as LLM_WEBHOOK_SECRET."""
    env = child_env(
        DATABASE_URL=database_url(),
        DRAMATIQ_BROKER_URL="db",
        JOBSITE_API_SECRET="",
        LLM_WEBHOOK_SECRET=LLM_SECRET,
        JWT_SIGNING_KEY="e2e-jwt-signing-key",
    )
    with web_server(env) as url, worker(env):
        yield url


def wait_for(fetch, done, timeout=30.0):
    """Call `fetch` until `done(body)`; return the body."""
    deadline = time.monotonic() + timeout
    while True:
        body = fetch()
        if done(body):
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.1)


def test_each_seeds_client_works_against_a_real_server(server):
    """One server for the three clients: starting gunicorn and a worker is most of the time this takes."""
    llm_workflow_client_and_its_dashboard(server)
    task_client(server)
    starter_client(server)


def llm_workflow_client_and_its_dashboard(server):
    secret = {"X-API-Secret": LLM_SECRET}
    submitted = requests.post(
        f"{server}/api/v1/workflow",
        json={
            "workflow_name": "text-analysis",
            "input_data": {"text": "Jobs run. Results return."},
            "user_id": None,
            "webhook_url": None,
            "priority": 3,
            "username": "dashboard",
            "action": "analyse",
        },
        headers=secret,
        timeout=10,
    )
    assert submitted.status_code == 201, submitted.text
    job_id = submitted.json()["job_id"]

    status = wait_for(
        lambda: requests.get(f"{server}/api/v1/status/{job_id}", headers=secret, timeout=5).json(),
        lambda body: body["status"] in ("completed", "failed"),
    )
    assert status["status"] == "completed", status
    assert (status["result_data"]["words"], status["result_data"]["sentences"]) == (4, 2)

    # fetchLLMJobs(statusFilter, limitResults) for every dropdown value.
    for limit_results in DROPDOWN:
        for status_filter, listed in (("all", True), ("completed", True), ("running", False), ("failed", False)):
            response = requests.get(
                f"{server}/api/v1/jobs",
                params={"status": status_filter, "limit_results": limit_results},
                headers=secret,
                timeout=5,
            )
            assert response.status_code == 200, response.text
            body = response.json()
            assert {"jobs", "total", "limit", "offset"} <= set(body)
            assert ([job["job_id"] for job in body["jobs"]] == [job_id]) is listed, (status_filter, limit_results)
    [summary] = requests.get(f"{server}/api/v1/jobs", params={"action": "analyse"}, headers=secret, timeout=5).json()[
        "jobs"
    ]
    assert (summary["workflow_name"], summary["username"], summary["action"]) == (
        "text-analysis",
        "dashboard",
        "analyse",
    )

    for wrong in ({"X-API-Secret": settings.JOBSITE_API_SECRET}, {"X-API-Secret": "nope"}, {}):
        refused = requests.get(f"{server}/api/v1/jobs", headers={**wrong, "X-Request-ID": "dash-1"}, timeout=5)
        assert refused.status_code == 401
        assert refused.json()["detail"]["error"] == "InvalidAPISecret"
        assert refused.json()["request_id"] == "dash-1"
    invalid = requests.get(f"{server}/api/v1/jobs", params={"limit_results": "Forever"}, headers=secret, timeout=5)
    assert (invalid.status_code, invalid.json()["detail"]["error"]) == (400, "InvalidLimitResults")


def task_client(server):
    secret = {"X-API-Secret": LLM_SECRET}
    created = requests.post(f"{server}/tasks/sample_task", json={"order": 7}, headers=secret, timeout=10)
    assert created.status_code == 201, created.text
    task = created.json()["task"]
    assert task["status"] == "not_started"

    again = requests.post(f"{server}/tasks/sample_task", json={"order": 7}, headers=secret, timeout=10)
    assert (again.status_code, again.json()["duplicate"], again.json()["task"]["id"]) == (200, True, task["id"])
    assert again.json()["task"]["max_retries"] == task["max_retries"] + 1

    done = wait_for(
        lambda: requests.get(f"{server}/tasks/{task['id']}", headers=secret, timeout=5).json(),
        lambda body: body["status"] != "not_started",
    )
    assert done["status"] == "success", done
    assert done["result_data"] is not None

    batch = requests.post(f"{server}/tasks/sample_task/batch", json=[{"n": 1}, {"n": 2}], headers=secret, timeout=10)
    assert [item["success"] for item in batch.json()["results"]] == [True, True]
    ids = {item["id"] for item in batch.json()["results"]}
    succeeded = {"status": "success", "task_name": "sample_task"}
    wait_for(
        lambda: requests.get(f"{server}/tasks", params=succeeded, headers=secret, timeout=5).json(),
        lambda body: body["total"] == 3,
    )
    listed = requests.get(f"{server}/tasks", params={"task_name": "sample_task"}, headers=secret, timeout=5).json()
    assert {t["id"] for t in listed["tasks"]} == ids | {task["id"]}
    stats = requests.get(f"{server}/tasks/stats", headers=secret, timeout=5).json()
    [sample] = [entry for entry in stats["tasks"] if entry["task_name"] == "sample_task"]
    assert (sample["counts"]["success"], sample["success_rate"]) == (3, 1.0)
    assert requests.delete(f"{server}/tasks/{task['id']}", headers=secret, timeout=5).status_code == 409
    assert Job.objects.filter(pipeline__name="sample_task").count() == 3


def starter_client(server):
    user = grant_role(UserFactory(username="starter"), "submitter")
    user.password = PBKDF2PasswordHasher().encode(PASSWORD, "e2e-salt-1234", iterations=1000)
    user.save()
    tokens = requests.post(
        f"{server}/api/v1/auth/login", json={"username": "starter", "password": PASSWORD}, timeout=10
    ).json()
    bearer = {"Authorization": f"Bearer {credentials.remember(tokens['access'])}"}
    credentials.remember(tokens["refresh"])

    created = requests.post(
        f"{server}/jobs", json={"job_type": "sample_task", "job_parameters": {"size": 2}}, headers=bearer, timeout=10
    )
    assert created.status_code == 201, created.text
    job_id = created.json()["job_id"]

    job = wait_for(
        lambda: requests.get(f"{server}/jobs/{job_id}", headers=bearer, timeout=5).json(),
        lambda body: body["status"] in ("completed", "failed"),
    )
    assert (job["status"], job["job_type"], job["user_id"]) == ("completed", "sample_task", str(user.pk))
    listed = requests.get(f"{server}/jobs", params={"status": "completed"}, headers=bearer, timeout=5).json()
    assert [row["job_id"] for row in listed["jobs"]] == [job_id]
    assert requests.get(f"{server}/jobs", headers={"X-API-Secret": LLM_SECRET}, timeout=5).status_code == 401
    assert requests.get(f"{server}/jobs", headers={"X-Request-ID": "s-1"}, timeout=5).json()["request_id"] == "s-1"
    assert requests.get(f"{server}/health", timeout=5).json() == {"status": "ok"}
    assert requests.get(f"{server}/health/db", timeout=5).json()["status"] == "ok"
    docs = requests.get(f"{server}/docs", timeout=5, allow_redirects=False)
    assert (docs.status_code, docs.headers["Location"]) == (302, "/api/docs/")
