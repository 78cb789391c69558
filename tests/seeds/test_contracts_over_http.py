"""Every seed contract, as its client calls it: plain HTTP (`requests`) against gunicorn and a real Dramatiq worker.

One test per seed surface of `../shared/design/seed-contracts.md`, each
against its own server and worker (`server` from test_real_clients.py: the
shared secret known only as `LLM_WEBHOOK_SECRET`), with data made through real
submissions that the worker runs, and factories only for states a client
cannot reach on demand (a job created days ago, or held in a given status):

- A, the LLM workflow service (seeds 000/001): `GET /api/v1/jobs` with every
  parameter, bound and error, the dashboard's `fetchLLMJobs` for each dropdown
  value with each status (the `.jobs` compared with what the contract selects),
  `GET /api/v1/status/{job_id}`, `POST /api/v1/workflow` (its callback
  delivered, signed), `POST /api/v1/workflow/validate`, `InvalidAPISecret`.
- B, the production job system (seed 002), at jobsite's `/api/v1/` paths:
  pipelines by id or name, jobs by `pipeline_id` with the config snapshotted,
  results, `/health/queue`, login, refresh, API keys with permission names,
  the audit log's filters, webhook subscriptions and deliveries, 403s.
- C, the task API (seed 003): every endpoint of its table, its status
  vocabulary, paging bounds, de-duplication, batch, cancel, retry and stats.
- D, the starter job API (seed 004): `/health`, `/health/db` (503 included),
  `/docs`, and `/jobs` with a JWT, user-scoped, its filters and bounds.

Where a seed leaves an answer unspecified, the test holds jobsite to what its
README documents ("Coming from ..."). Every error body must carry the request id
the client sent.
"""

import base64
import json
import math
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from django.conf import settings
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from jobs.models import Job, JobStatus
from pipelines.models import Pipeline
from pipelines.services import pipeline_ensure
from tests import credentials
from tests.conftest import grant_role
from tests.contracts import JOBSITE_SUMMARY_EXTRAS, SEED_JOB_SUMMARY
from tests.e2e.conftest import child_env, web_server
from tests.factories import JobFactory, PipelineFactory, UserFactory
from tests.seeds.test_real_clients import (
    DROPDOWN,
    LLM_SECRET,
    PASSWORD,
    server,  # noqa: F401  the fixture `site` starts
    wait_for,
)

pytestmark = pytest.mark.e2e

TERMINAL = {"completed", "failed", "cancelled"}


@pytest.fixture
def site(transactional_db, monkeypatch, request):
    """test_real_clients's `server` (gunicorn and a worker, the secret only as LLM_WEBHOOK_SECRET), with
    private addresses allowed so that webhooks reach a receiver on 127.0.0.1 (child_env copies the environment)."""
    monkeypatch.setenv("ALLOW_PRIVATE_NETWORK_URLS", "1")
    return request.getfixturevalue("server")


class Client:
    """A seed's client: plain HTTP, the headers it always sends, and a request id of its own on every call."""

    def __init__(self, base: str, name: str, **headers: str):
        self.base, self.name, self.headers, self.calls = base, name, headers, 0
        self.session = requests.Session()

    def __call__(self, method: str, path: str, *, params=None, json: Any = ..., data=None, headers=None):
        self.calls += 1
        sent = {"X-Request-ID": f"{self.name}-{self.calls:04d}", **self.headers, **(headers or {})}
        body = {} if json is ... else {"json": json}
        return self.session.request(
            method,
            self.base + path,
            params=params,
            data=data,
            headers={key: value for key, value in sent.items() if value is not None},  # None: not sent
            timeout=20,
            **body,
        )

    def get(self, path: str, params=None, **options):
        return self("GET", path, params=params, **options)

    def post(self, path: str, json: Any = ..., **options):
        return self("POST", path, json=json, **options)

    def put(self, path: str, json: Any, **options):
        return self("PUT", path, json=json, **options)

    def patch(self, path: str, **options):
        return self("PATCH", path, **options)

    def delete(self, path: str, **options):
        return self("DELETE", path, **options)


def ok(response: requests.Response, status: int = 200) -> Any:
    assert response.status_code == status, (response.status_code, response.text[:3000])
    return response.json()


def refused(response: requests.Response, status: int) -> dict:
    """An error answered with `status`: a JSON body carrying the request id sent (echoed in X-Request-ID)."""
    assert response.status_code == status, (response.status_code, response.text[:3000])
    assert response.headers["Content-Type"].startswith("application/json"), response.headers["Content-Type"]
    body = response.json()
    sent = response.request.headers["X-Request-ID"]
    assert body["request_id"] == sent == response.headers["X-Request-ID"], body
    return body


def fastapi_detail(body: dict) -> list[dict]:
    """FastAPI's validation `detail`: a non-empty list of `{loc, msg, type}`."""
    detail = body["detail"]
    assert isinstance(detail, list) and detail, body
    for item in detail:
        assert {"loc", "msg", "type"} <= set(item), item
        assert isinstance(item["loc"], list) and isinstance(item["msg"], str) and item["msg"], item
    return detail


def locs(body: dict) -> list[list]:
    return [item["loc"] for item in fastapi_detail(body)]


def unprocessable(response: requests.Response, loc: list) -> dict:
    """A 422 whose `detail` names `loc`."""
    body = refused(response, 422)
    assert loc in locs(body), body
    return body


def user_with_password(username: str, role: str | None = None):
    """A user who logs in over HTTP with PASSWORD (a cheap hash the server accepts)."""
    user = UserFactory(username=username)
    if role:
        grant_role(user, role)
    user.password = PBKDF2PasswordHasher().encode(PASSWORD, f"salt{username}", iterations=1000)
    user.save()
    return user


def log_in(base: str, username: str) -> dict:
    """`POST /api/v1/auth/login`: the token pair, registered for the log scan."""
    tokens = ok(
        requests.post(f"{base}/api/v1/auth/login", json={"username": username, "password": PASSWORD}, timeout=20)
    )
    credentials.remember(tokens["access"])
    credentials.remember(tokens["refresh"])
    return tokens


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {credentials.remember(token)}"}


def api_key(user) -> dict:
    """A new API key of `user` (no scopes: all the user may do), as `requests` headers.

    Cheaper than a login, whose password check costs the server a full PBKDF2 round.
    """
    return {"Authorization": credentials.api_key_for(user)["HTTP_AUTHORIZATION"]}


def claims(token: str) -> dict:
    """A JWT's claims, read as any client may (unverified)."""
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def parse_time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    assert parsed.tzinfo is not None, value
    return parsed


def receiver(httpserver, path: str) -> str:
    """A webhook receiver on 127.0.0.1 answering 200 at `path`; its URL."""
    httpserver.expect_request(path, method="POST").respond_with_data("ok")
    return f"http://127.0.0.1:{httpserver.port}{path}"


def received(httpserver, path: str) -> list:
    return [request for request, _ in httpserver.log if request.path == path]


def verified(request, secret: str) -> dict:
    """A received webhook's payload, after checking its signature as a receiver does."""
    key = secret if secret.startswith("whsec_") else secret.encode()
    return Webhook(key).verify(request.get_data(as_text=True), dict(request.headers))


# == A. The LLM workflow service (seeds 000/001) ================================================

JOBS = "/api/v1/jobs"
WORKFLOW = "/api/v1/workflow"
VALIDATE = "/api/v1/workflow/validate"
# JobSummary, in 001's order (tests.contracts); then jobsite's extras.
JOB_SUMMARY, SUMMARY_EXTRAS = SEED_JOB_SUMMARY, JOBSITE_SUMMARY_EXTRAS
# The contract's status groups (stored values).
GROUPS = {
    "all": {"pending", "queued", "processing", "completed", "failed"},
    "running": {"queued", "processing"},
    "completed": {"completed"},
    "failed": {"failed"},
}
VALID_VALUES = ["1-500", "Today", "7 Days", "30 Days"]
FULL_SUBMISSION = {
    "workflow_name": "text-analysis",
    "user_id": "6f1c3c1e-8f0a-4b39-9a53-0c2f7b0c9a11",
    "input_data": {"text": "Summarize this. Please."},
    "webhook_url": None,  # the receiver's, set by the test
    "webhook_secret": credentials.remember(f"llm-callback-secret-{uuid.uuid4().hex}"),
    "priority": 4,
    "debug_mode": True,
    "username": "alice",
    "action": "summarize",
}
# One bad field each -> 422 at ["body", field]; None: the field left out.
BAD_SUBMISSIONS = [
    ({"workflow_name": None}, "workflow_name"),
    ({"workflow_name": "w" * 101}, "workflow_name"),
    ({"workflow_name": "no-such-workflow"}, "workflow_name"),
    ({"input_data": None}, "input_data"),
    ({"input_data": ["a"]}, "input_data"),
    ({"input_data": {"title": 5}}, "input_data"),
    ({"priority": 11}, "priority"),
    ({"priority": -1}, "priority"),
    ({"priority": "high"}, "priority"),
    ({"username": "u" * 256}, "username"),
    ({"action": "a" * 256}, "action"),
    ({"user_id": "not-a-uuid"}, "user_id"),
    ({"webhook_url": "not a url"}, "webhook_url"),
    ({"debug_mode": "sometimes"}, "debug_mode"),
]


def midnight(now: datetime) -> datetime:
    return datetime.combine(now.date(), datetime.min.time(), tzinfo=UTC)


def dashboard_history(now: datetime) -> None:
    """Jobs of every seed status at four ages (today, 3, 10 and 40 days old), each at its own instant.

    completed 240 (more than the largest numeric dropdown value), failed 60,
    queued and processing 15 each, pending 10: no broker message, so the worker
    leaves them as they are.
    """
    today = midnight(now) + (now - midnight(now)) / 2
    ages = [today, now - timedelta(days=3), now - timedelta(days=10), now - timedelta(days=40)]
    pipeline = PipelineFactory(name="summarize")
    jobs = []
    for status, count in {"completed": 240, "failed": 60, "queued": 15, "processing": 15, "pending": 10}.items():
        for n in range(count):
            created = ages[n % 4] - timedelta(milliseconds=len(jobs) + 1)
            jobs.append(JobFactory.build(pipeline=pipeline, status=status, created_at=created))
    Job.objects.bulk_create(jobs)


def contract_page(jobs, now, *, status="all", limit_results="", limit=50, offset=0) -> tuple[list[str], int, int]:
    """What the contract selects: (job ids newest first, total before paging, the limit served)."""
    matches = [job for job in jobs if job.status in GROUPS[status]]
    if limit_results == "Today":
        matches = [job for job in matches if job.created_at >= midnight(now)]
    elif limit_results in ("7 Days", "30 Days"):
        since = now - timedelta(days=int(limit_results.split()[0]))
        matches = [job for job in matches if job.created_at >= since]
    elif limit_results:
        limit = int(limit_results)
    matches.sort(key=lambda job: job.created_at, reverse=True)
    return [str(job.pk) for job in matches[offset : offset + limit]], len(matches), limit


def test_llm_workflow_clients_and_the_dashboard_are_served_their_whole_contract(site, httpserver):
    now = timezone.now()
    if min(now - midnight(now), midnight(now) + timedelta(days=1) - now) < timedelta(minutes=2):
        pytest.skip("too close to 00:00 UTC: 'Today' would change during the test")
    dash = Client(site, "llm", **{"X-API-Secret": LLM_SECRET})
    failing, _ = pipeline_ensure(
        name="always-fails",
        config={"stages": [{"name": "pick", "type": "transform", "params": {"select": {"x": "input.missing"}}}]},
    )

    # -- the shared secret: wrong, missing or empty is a 401 InvalidAPISecret on all four endpoints --
    probes = [
        ("GET", JOBS, ...),
        ("GET", f"/api/v1/status/{uuid.uuid4()}", ...),
        ("POST", WORKFLOW, {"workflow_name": "sample_task", "input_data": {}}),
        ("POST", VALIDATE, {"workflow_name": "sample_task", "input_data": {}}),
    ]
    for method, path, body in probes:
        for secret in ("not-the-secret", None, "", settings.JOBSITE_API_SECRET):
            response = dash(method, path, json=body, headers={"X-API-Secret": secret})
            detail = refused(response, 401)["detail"]
            assert detail["error"] == "InvalidAPISecret", (method, path, secret, detail)
            assert isinstance(detail["message"], str) and detail["message"]
    assert not Job.objects.exists()

    # -- POST /api/v1/workflow: WorkflowSubmitRequest -----------------------------------------
    callback = receiver(httpserver, "/llm-callback")
    full = {**FULL_SUBMISSION, "webhook_url": callback}
    before = timezone.now()
    response = dash.post(WORKFLOW, full)
    submitted = ok(response, 201)
    assert full["webhook_secret"] not in response.text
    assert (submitted["workflow_name"], submitted["status"]) == ("text-analysis", "queued")
    assert before <= parse_time(submitted["queued_at"]) <= timezone.now()
    for field in ("user_id", "priority", "debug_mode", "username", "action", "webhook_url", "input_data"):
        assert submitted[field] == full[field], field
    analysed = submitted["job_id"]

    at_bounds = ok(
        dash.post(
            WORKFLOW,
            {
                "workflow_name": "sample_task",
                "input_data": {},
                "priority": 10,
                "username": "u" * 255,
                "action": "a" * 255,
            },
        ),
        201,
    )
    assert (at_bounds["priority"], at_bounds["username"], at_bounds["action"]) == (10, "u" * 255, "a" * 255)

    # webhook_url left out (the handler tolerated it), the rest null: the defaults.
    minimal = ok(
        dash.post(
            WORKFLOW,
            {
                "workflow_name": "sample_task",
                "input_data": {},
                "user_id": None,
                "webhook_secret": None,
                "username": None,
                "action": None,
            },
        ),
        201,
    )
    assert (minimal["priority"], minimal["debug_mode"]) == (0, False)
    for field in ("user_id", "username", "action", "webhook_url"):
        assert minimal[field] is None, field

    failed = ok(dash.post(WORKFLOW, {"workflow_name": failing.name, "input_data": {"n": 1}}), 201)["job_id"]
    real_jobs = [analysed, at_bounds["job_id"], minimal["job_id"], failed]

    # -- invalid submissions: a 422 naming the field, on submit and validate alike; nothing written --
    for path in (WORKFLOW, VALIDATE):
        for change, field in BAD_SUBMISSIONS:
            body = {"workflow_name": "text-analysis", "input_data": {"text": "hi"}, **change}
            body = {key: value for key, value in body.items() if value is not None}
            unprocessable(dash.post(path, body), ["body", field])
        [missing] = fastapi_detail(refused(dash.post(path, {"input_data": {}}), 422))
        assert (missing["loc"], missing["type"]) == (["body", "workflow_name"], "missing")
        not_json = dash.post(path, data="{not json", headers={"Content-Type": "application/json"})
        assert locs(refused(not_json, 422)) == [["body"]]

    # -- POST /api/v1/workflow/validate: valid, and no write ------------------------------------
    assert ok(dash.post(VALIDATE, full)) == {"valid": True}
    assert Job.objects.count() == len(real_jobs)

    # -- GET /api/v1/status/{job_id}: the full status, once the worker is done ------------------
    def status_of(job_id):
        return ok(dash.get(f"/api/v1/status/{job_id}"))

    finals = {
        job_id: wait_for(lambda j=job_id: status_of(j), lambda b: b["status"] in TERMINAL) for job_id in real_jobs
    }
    assert [finals[job_id]["status"] for job_id in real_jobs] == ["completed", "completed", "completed", "failed"]
    done = finals[analysed]
    assert set(JOB_SUMMARY) <= set(done)
    assert (done["job_id"], done["workflow_name"], done["input_data"]) == (
        analysed,
        "text-analysis",
        full["input_data"],
    )
    assert (done["result_data"]["words"], done["result_data"]["sentences"]) == (3, 2)
    assert done["duration_ms"] is not None and done["started_at"] and done["completed_at"]
    assert (done["debug_mode"], done["webhook_url"], done["user_id"]) == (True, callback, full["user_id"])
    assert "webhook_secret" not in done
    # debug_mode: every stage's output and the job's event log.
    outputs = {run["name"]: run["output"] for run in done["debug"]["stage_runs"]}
    assert outputs["stats"] == done["result_data"] and outputs["extract"]["text"] == "Summarize this. Please."
    assert [event["type"] for event in done["debug"]["events"]] == ["job.created", "job.started", "job.completed"]
    lost = finals[failed]
    assert (lost["result_data"], lost["debug_mode"], lost["debug"]) == (None, False, None)
    assert "input.missing" in lost["error_message"]
    assert status_of(f"{analysed}/")["job_id"] == analysed
    assert refused(dash.get(f"/api/v1/status/{uuid.uuid4()}"), 404)["detail"] == "Job not found."
    for not_a_uuid in ("123", "not-a-uuid"):
        assert locs(refused(dash.get(f"/api/v1/status/{not_a_uuid}"), 422)) == [["path", "job_id"]]

    # The callback reached webhook_url, signed with webhook_secret.
    wait_for(lambda: received(httpserver, "/llm-callback"), bool)
    event = verified(received(httpserver, "/llm-callback")[0], full["webhook_secret"])
    assert (event["type"], event["data"]["job_id"], event["data"]["status"]) == ("job.completed", analysed, "completed")

    # -- GET /api/v1/jobs: JobsListResponse of JobSummary ----------------------------------------
    listed = ok(dash.get(JOBS))
    assert (listed["total"], listed["limit"], listed["offset"]) == (4, 50, 0)
    row = next(row for row in listed["jobs"] if row["job_id"] == analysed)
    assert list(row)[: len(JOB_SUMMARY)] == JOB_SUMMARY
    assert set(row) == set(JOB_SUMMARY) | SUMMARY_EXTRAS
    assert (row["workflow_name"], row["status"], row["priority"], row["user_id"]) == (
        "text-analysis",
        "completed",
        4,
        full["user_id"],
    )
    assert (row["username"], row["action"], row["error_message"]) == ("alice", "summarize", None)
    assert isinstance(row["duration_ms"], int)
    for field in ("created_at", "started_at", "completed_at"):
        parse_time(row[field])
    blank = next(row for row in listed["jobs"] if row["job_id"] == minimal["job_id"])
    for field in ("user_id", "username", "action", "error_message"):
        assert blank[field] is None, field
    assert "input_data" not in listed["jobs"][0] and "result_data" not in listed["jobs"][0]
    assert "Summarize this" not in dash.get(JOBS).text
    # user_id: exact match; jobs without one never match.
    assert [r["job_id"] for r in ok(dash.get(JOBS, {"user_id": full["user_id"]}))["jobs"]] == [analysed]
    assert ok(dash.get(JOBS, {"user_id": str(uuid.uuid4())}))["jobs"] == []

    # -- the LLM Queue tab: fetchLLMJobs(statusFilter, limitResults) for every dropdown value ---
    dashboard_history(now)
    jobs = list(Job.objects.all())
    queued = next(job for job in jobs if job.status == JobStatus.QUEUED and str(job.pk) not in real_jobs)
    assert (status_of(queued.pk)["status"], status_of(queued.pk)["result_data"]) == ("queued", None)
    for limit_results in DROPDOWN:
        for status in ("all", "running", "completed", "failed"):
            body = ok(dash.get(JOBS, {"status": status, "limit_results": limit_results}))
            ids, total, limit = contract_page(jobs, now, status=status, limit_results=limit_results)
            assert [r["job_id"] for r in body["jobs"]] == ids, (status, limit_results)
            assert (body["total"], body["limit"], body["offset"]) == (total, limit, 0), (status, limit_results)
            assert {r["status"] for r in body["jobs"]} <= GROUPS[status], (status, limit_results)
    # Sending only the limit lists every status.
    ids, total, _ = contract_page(jobs, now, limit_results="25")
    body = ok(dash.get(JOBS, {"limit_results": "25"}))
    assert ([r["job_id"] for r in body["jobs"]], body["total"]) == (ids, total)
    assert total == len(jobs)

    # -- limit_results, limit and offset together ----------------------------------------------
    def page(params, **expected):
        body = ok(dash.get(JOBS, params))
        ids, total, limit = contract_page(jobs, now, **expected)
        assert [r["job_id"] for r in body["jobs"]] == ids, params
        assert (body["total"], body["limit"], body["offset"]) == (total, limit, expected.get("offset", 0)), params
        return body

    # A number replaces limit (and may exceed 200); offset applies; limit echoes it.
    numeric = page(
        {"limit_results": "230", "limit": "10", "status": "completed"}, status="completed", limit_results="230"
    )
    assert len(numeric["jobs"]) == 230
    page({"limit_results": "500"}, limit_results="500")
    page({"limit_results": "10", "offset": "5", "status": "failed"}, status="failed", limit_results="10", offset=5)
    # A period keeps limit and offset.
    page(
        {"limit_results": "30 Days", "limit": "7", "offset": "3", "status": "completed"},
        status="completed",
        limit_results="30 Days",
        limit=7,
        offset=3,
    )
    # An empty limit_results is none.
    page({"limit_results": "", "status": "failed"}, status="failed")
    # limit and offset alone; their bounds served.
    page({"limit": "2", "offset": "2"}, limit=2, offset=2)
    page({"limit": "1"}, limit=1)
    page({"limit": "200"}, limit=200)
    page({"offset": "0"})
    # The space may come as %20 or +.
    for encoded in ("7%20Days", "7+Days"):
        body = ok(dash.get(f"{JOBS}?limit_results={encoded}&status=failed"))
        ids, total, _ = contract_page(jobs, now, status="failed", limit_results="7 Days")
        assert ([r["job_id"] for r in body["jobs"]], body["total"]) == (ids, total)
    # status_filter is status.
    by_status = ok(dash.get(JOBS, {"status": "running", "limit_results": "200"}))
    by_synonym = ok(dash.get(JOBS, {"status_filter": "running", "limit_results": "200"}))
    assert (by_synonym["jobs"], by_synonym["total"]) == (by_status["jobs"], by_status["total"]) != ([], 0)
    # The trailing slash is the same list.
    assert ok(dash.get(f"{JOBS}/", {"limit": "3"}))["jobs"] == ok(dash.get(JOBS, {"limit": "3"}))["jobs"]

    # -- the list's errors ---------------------------------------------------------------------
    for status in ("bogus", "Running", "RUNNING", "ALL", "done"):
        detail = refused(dash.get(JOBS, {"status": status}), 400)["detail"]
        assert isinstance(detail, str) and "status" in detail and repr(status) in detail, detail
    for value in ("0", "501", "-1", "1000"):
        detail = refused(dash.get(JOBS, {"limit_results": value}), 400)["detail"]
        assert (detail["error"], detail["limit_results"]) == ("InvalidLimitResults", value)
        assert detail["message"] and "valid_values" not in detail
    for value in ("today", "TODAY", "7 days", "7Days", "1 Day", "abc", "1.5", "Yesterday", " 5", "+5"):
        detail = refused(dash.get(JOBS, {"limit_results": value}), 400)["detail"]
        assert (detail["error"], detail["limit_results"], detail["valid_values"]) == (
            "InvalidLimitResults",
            value,
            VALID_VALUES,
        )
        assert detail["message"]
    for param, value in (
        ("limit", "0"),
        ("limit", "201"),
        ("limit", "-3"),
        ("limit", "ten"),
        ("offset", "-1"),
        ("offset", "x"),
    ):
        assert locs(refused(dash.get(JOBS, {param: value}), 422)) == [["query", param]], (param, value)
    assert "user_id" in refused(dash.get(JOBS, {"user_id": "not-a-uuid"}), 400)["detail"]
    assert "statusFilter" in refused(dash.get(JOBS, {"statusFilter": "running"}), 400)["details"]
    assert Job.objects.count() == len(jobs)


# == B. The production job system (seed 002) =====================================================

PIPELINES = "/api/v1/pipelines"
# The first config: wait 1.5 s (so that the result is not ready at once), then echo the input.
SLOW_ECHO = {
    "input_schema": {"type": "object"},
    "stages": [{"name": "wait", "type": "sleep", "params": {"seconds": 1.5}}, {"name": "only", "type": "echo"}],
    "max_attempts": 2,
}
# The second: pick one field of the input.
PICK = {
    "input_schema": {"type": "object"},
    "stages": [{"name": "pick", "type": "transform", "params": {"select": {"copied": "input.page"}}}],
}
AUDIT_COLUMNS = {
    "id",
    "timestamp",
    "user_id",
    "action",
    "resource_type",
    "resource_id",
    "request_details",
    "success",
    "error_message",
    "ip_address",
    "user_agent",
}


def test_production_job_system_clients_are_served_their_whole_contract(site, httpserver):
    started = timezone.now() - timedelta(seconds=1)
    operator_user = grant_role(UserFactory(username="operator"), "operator")
    alice = user_with_password("alice", "submitter")
    auditor = grant_role(UserFactory(username="auditor"), "auditor")

    # -- public health; everything else needs a caller ------------------------------------------
    anonymous = Client(site, "anon")
    assert ok(anonymous.get("/health")) == {"status": "ok"}
    assert ok(anonymous.get("/health/db")) == {"status": "ok"}
    assert ok(anonymous.get("/health/queue")) == {"status": "ok"}  # up/down only for the public
    for path in (PIPELINES, JOBS, "/api/v1/audit/logs", "/api/v1/auth/api-keys", "/api/v1/webhooks"):
        assert refused(anonymous.get(path), 401)["error"] == "not_authenticated", path

    # -- POST /auth/login, POST /auth/refresh ----------------------------------------------------
    tokens = log_in(site, "alice")
    assert set(tokens) >= {"access", "refresh"}
    token_claims = claims(tokens["access"])
    assert token_claims["user_id"] == str(alice.pk) and token_claims["exp"] > token_claims["iat"]
    renewed = ok(anonymous.post("/api/v1/auth/refresh", {"refresh": tokens["refresh"]}))
    credentials.remember(renewed["refresh"])
    assert claims(renewed["access"])["user_id"] == str(alice.pk)
    assert ok(requests.get(f"{site}{JOBS}", headers=bearer(renewed["access"]), timeout=20))["jobs"] == []
    refused(anonymous.post("/api/v1/auth/refresh", {"refresh": tokens["refresh"]}), 401)  # rotated: spent
    refused(anonymous.post("/api/v1/auth/login", {"username": "alice", "password": "wrong"}), 401)
    submitter = Client(site, "alice", **bearer(renewed["access"]))
    operator = Client(site, "operator", **api_key(operator_user))

    # -- GET /health/queue for an operator: depths, rates, workers -------------------------------
    queue = wait_for(lambda: ok(operator.get("/health/queue")), lambda body: body.get("workers"))
    assert queue["status"] == "ok" and isinstance(queue["queues"], dict)
    assert set(queue["processed"]) == {"last_minute", "last_hour"}
    assert {"id", "queues", "last_seen_at"} <= set(queue["workers"][0])

    # -- POST/GET /pipelines, GET/PUT/DELETE /pipelines/{id} -------------------------------------
    created = ok(operator.post(PIPELINES, {"name": "ocr", "description": "d", "config": SLOW_ECHO}), 201)
    assert isinstance(created["id"], int)
    assert (created["name"], created["config"], created["version"], created["is_active"]) == ("ocr", SLOW_ECHO, 1, True)
    assert {"id", "name", "description", "config", "version", "is_active", "created_at", "updated_at"} <= set(created)
    listed = ok(operator.get(PIPELINES))["results"]
    assert ("ocr", created["id"]) in {(p["name"], p["id"]) for p in listed}
    assert ok(operator.get(f"{PIPELINES}/{created['id']}")) == ok(operator.get(f"{PIPELINES}/ocr"))
    for unknown in ("999999", "no-such-pipeline"):
        refused(operator.get(f"{PIPELINES}/{unknown}"), 404)
    # Permission refused: a submitter reads the outline, never writes.
    outline = ok(submitter.get(f"{PIPELINES}/{created['id']}"))
    assert (outline["id"], outline["name"]) == (created["id"], "ocr") and "config" not in outline
    assert refused(submitter.post(PIPELINES, {"name": "mine", "config": PICK}), 403)["error"] == "permission_denied"
    assert refused(submitter.delete(f"{PIPELINES}/{created['id']}"), 403)["error"] == "permission_denied"

    # -- webhooks: POST/GET /webhooks (subscribed before the job runs) ---------------------------
    hook_url = receiver(httpserver, "/subscriber")
    bad_events = refused(submitter.post("/api/v1/webhooks", {"url": hook_url, "events": ["job.exploded"]}), 400)
    assert "job.completed" in bad_events["details"]["valid_values"]
    subscription = ok(
        submitter.post("/api/v1/webhooks", {"url": hook_url, "events": ["job.completed", "job.failed"]}), 201
    )
    secret = credentials.remember(subscription["secret"])
    assert secret.startswith("whsec_")
    assert (subscription["url"], subscription["events"], subscription["is_active"], subscription["user_id"]) == (
        hook_url,
        ["job.completed", "job.failed"],
        True,
        str(alice.pk),
    )
    subscriptions = submitter.get("/api/v1/webhooks")
    assert [s["id"] for s in ok(subscriptions)["results"]] == [subscription["id"]]
    assert secret not in subscriptions.text

    # -- job creation with pipeline_id; GET /jobs/{id}/result ------------------------------------
    first = ok(submitter.post(JOBS, {"pipeline_id": created["id"], "input_data": {"page": 2}}), 201)
    assert (first["workflow_name"], first["pipeline_version"], first["user_id"]) == ("ocr", 1, str(alice.pk))
    job_id = first["job_id"]
    assert refused(submitter.get(f"{JOBS}/{job_id}/result"), 404)["error"] == "result_not_ready"
    result = wait_for(lambda: submitter.get(f"{JOBS}/{job_id}/result"), lambda r: r.status_code == 200).json()
    assert (result["job_id"], result["result"]) == (job_id, {"page": 2})
    assert set(result) == {
        "job_id",
        "result",
        "metadata",
        "size_bytes",
        "processing_time_ms",
        "created_at",
        "expires_at",
    }
    assert result["size_bytes"] > 0 and result["processing_time_ms"] >= 1500

    # PUT a new config: a new version for new jobs; the earlier job keeps its snapshot.
    updated = ok(operator.put(f"{PIPELINES}/{created['id']}", {"name": "ocr", "description": "picks", "config": PICK}))
    assert (updated["id"], updated["description"], updated["config"], updated["version"]) == (
        created["id"],
        "picks",
        PICK,
        2,
    )
    second = ok(submitter.post(JOBS, {"pipeline_id": created["id"], "input_data": {"page": 3}}), 201)
    assert second["pipeline_version"] == 2
    second_result = wait_for(lambda: submitter.get(f"{JOBS}/{second['job_id']}/result"), lambda r: r.status_code == 200)
    assert second_result.json()["result"] == {"copied": 3}
    assert ok(submitter.get(f"{JOBS}/{job_id}"))["pipeline_version"] == 1
    assert Job.objects.get(pk=job_id).pipeline_config == SLOW_ECHO
    for bad in (999_999, 0, "abc"):
        assert "pipeline_id" in refused(submitter.post(JOBS, {"pipeline_id": bad, "input_data": {}}), 400)["details"]
    refused(submitter.get(f"{JOBS}/{uuid.uuid4()}/result"), 404)

    # DELETE: jobs reference it, so it is deactivated, and takes no more jobs.
    deactivated = ok(operator.delete(f"{PIPELINES}/{created['id']}"))
    assert (deactivated["id"], deactivated["is_active"]) == (created["id"], False)
    assert (
        "pipeline_id" in refused(submitter.post(JOBS, {"pipeline_id": created["id"], "input_data": {}}), 400)["details"]
    )
    scratch = ok(operator.post(PIPELINES, {"name": "scratch", "description": "temporary", "config": PICK}), 201)
    assert operator.delete(f"{PIPELINES}/scratch").status_code == 204
    refused(operator.get(f"{PIPELINES}/{scratch['id']}"), 404)

    # -- GET /webhooks/{id}/deliveries, DELETE /webhooks/{id} -----------------------------------
    deliveries_path = f"/api/v1/webhooks/{subscription['id']}/deliveries"
    deliveries = wait_for(
        lambda: ok(submitter.get(deliveries_path)),
        lambda body: body["count"] == 2 and {d["status"] for d in body["results"]} == {"succeeded"},
    )["results"]
    assert {d["job_id"] for d in deliveries} == {job_id, second["job_id"]}
    for delivery in deliveries:
        assert (delivery["event_type"], delivery["attempts"], delivery["last_response_code"]) == (
            "job.completed",
            1,
            200,
        )
        assert delivery["delivered_at"] and delivery["subscription_id"] == subscription["id"]
    payloads = [verified(request, secret) for request in received(httpserver, "/subscriber")]
    assert {(p["type"], p["data"]["job_id"]) for p in payloads} == {
        ("job.completed", job_id),
        ("job.completed", second["job_id"]),
    }
    assert submitter.delete(f"/api/v1/webhooks/{subscription['id']}").status_code == 204
    refused(submitter.get(f"/api/v1/webhooks/{subscription['id']}"), 404)
    assert ok(submitter.get("/api/v1/webhooks"))["results"] == []

    # -- POST /auth/api-keys with permission names; a refused permission is a 403 -----------------
    reader = ok(submitter.post("/api/v1/auth/api-keys", {"name": "ci", "permissions": ["jobs:read"]}), 201)
    key = credentials.remember(reader["key"])
    assert (reader["name"], reader["scopes"]) == ("ci", ["jobs:read"])
    assert {"id", "prefix", "key", "expires_at", "created_at"} <= set(reader)
    with_key = Client(site, "key", **{"X-API-Key": key})
    assert {r["job_id"] for r in ok(with_key.get(JOBS))["jobs"]} == {job_id, second["job_id"]}
    assert (
        refused(with_key.post(JOBS, {"pipeline": "sample_task", "input_data": {}}), 403)["error"] == "permission_denied"
    )
    creator = ok(submitter.post("/api/v1/auth/api-keys", {"name": "submit", "permissions": ["jobs:create"]}), 201)
    as_creator = Client(site, "creator", Authorization=f"Api-Key {credentials.remember(creator['key'])}")
    by_key = ok(as_creator.post(JOBS, {"pipeline": "sample_task", "input_data": {}}), 201)["job_id"]
    unknown = refused(submitter.post("/api/v1/auth/api-keys", {"name": "x", "permissions": ["jobs:everything"]}), 400)
    assert "permissions" in unknown["details"]
    assert {k["name"] for k in ok(submitter.get("/api/v1/auth/api-keys"))["results"]} == {"ci", "submit"}

    # -- GET /audit/logs: date range, user, resource; paginated ----------------------------------
    audit = Client(site, "auditor", **api_key(auditor))
    assert refused(submitter.get("/api/v1/audit/logs"), 403)["error"] == "permission_denied"

    def logs(**params) -> list[dict]:
        return ok(audit.get("/api/v1/audit/logs", {"limit": "200", **params}))["results"]

    created_jobs = logs(action="jobs.job.create", user_id=str(alice.pk), success="true")
    assert {row["resource_id"] for row in created_jobs} == {job_id, second["job_id"], by_key}  # a key acts as its user
    assert set(created_jobs[0]) >= AUDIT_COLUMNS
    assert {(row["user_id"], row["resource_type"], row["success"]) for row in created_jobs} == {
        (str(alice.pk), "job", True)
    }
    # by username too; by resource
    assert logs(action="jobs.job.create", user="alice", success="true") == created_jobs
    [one] = logs(resource_type="job", resource_id=job_id, action="jobs.job.create")
    assert one["resource_id"] == job_id
    pipeline_rows = logs(resource_type="pipeline")
    assert {row["resource_type"] for row in pipeline_rows} == {"pipeline"}
    assert {"pipelines.pipeline.create", "pipelines.pipeline.update"} <= {row["action"] for row in pipeline_rows}
    # the date range: start_date/end_date, or since/until
    after = (timezone.now() + timedelta(minutes=1)).isoformat()
    mine = {"action": "jobs.job.create", "user": "alice", "success": "true"}
    assert logs(**mine, start_date=started.isoformat(), end_date=after) == created_jobs
    assert logs(**mine, since=started.isoformat(), until=after) == created_jobs
    assert logs(start_date=after) == []
    assert logs(user="alice", end_date=started.isoformat()) == []
    # refusals are logged too, with their outcome
    denied = wait_for(lambda: logs(success="false", user="alice"), lambda rows: 403 in {r["status_code"] for r in rows})
    assert {row["success"] for row in denied} == {False}
    # paginated
    first_page = ok(audit.get("/api/v1/audit/logs", {"limit": "1", "action": "jobs.*"}))
    assert (len(first_page["results"]), first_page["next"] is not None) == (1, True)
    assert first_page["count"] >= 3
    assert "start_date" in refused(audit.get("/api/v1/audit/logs", {"start_date": "last week"}), 400)["details"]
    assert "page" in refused(audit.get("/api/v1/audit/logs", {"page": "2"}), 400)["details"]


# == C. The task API (seed 003) ===================================================================

TASK = "ExampleDatabaseTask"
TASK_SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "count": {"type": "integer"}},
    "required": ["name"],
}
TASK_FIELDS = {"id", "task_name", "task_payload", "task_payload_prefix", "status", "result_data", "max_retries"}
# The task API's statuses and the jobsite statuses each stands for (README, "Coming from the task API").
TASK_STATUSES = {
    "not_started": {"pending", "scheduled", "queued", "processing", "retrying", "cancelling"},
    "success": {"completed"},
    "error": {"failed", "cancelled"},
}


def task_status(job_status: str) -> str:
    return next(name for name, statuses in TASK_STATUSES.items() if job_status in statuses)


def test_task_api_clients_are_served_their_whole_contract(site):
    echo = [{"name": "store", "type": "echo"}]
    pipeline, _ = pipeline_ensure(name=TASK, config={"input_schema": TASK_SCHEMA, "stages": echo, "max_attempts": 3})
    other, _ = pipeline_ensure(name="OtherTask", config={"stages": echo})
    tasks = Client(site, "tasks", **{"X-API-Secret": LLM_SECRET})

    def task(task_id) -> dict:
        return ok(tasks.get(f"/tasks/{task_id}"))

    def settled(task_id) -> dict:
        return wait_for(lambda: task(task_id), lambda body: body["job_status"] in TERMINAL)

    # No authentication was stated; jobsite needs a caller (the shared secret here).
    assert refused(tasks.post(f"/tasks/{TASK}", {"name": "x"}, headers={"X-API-Secret": None}), 401)["detail"]

    # -- POST /tasks/{task_name}: new, then duplicate --------------------------------------------
    new = ok(tasks.post(f"/tasks/{TASK}", {"name": "first", "count": 2}), 201)
    assert (new["duplicate"], new["message"]) == (False, "Task created.")
    first = new["task"]
    assert set(first) >= TASK_FIELDS
    assert (first["task_name"], first["task_payload"], first["status"]) == (
        TASK,
        {"name": "first", "count": 2},
        "not_started",
    )
    assert (first["result_data"], first["max_retries"]) == (None, 2)
    assert str(uuid.UUID(first["id"])) == first["id"]
    again = ok(tasks.post(f"/tasks/{TASK}", {"count": 2, "name": "first"}))  # the same payload, keys reordered
    assert again["duplicate"] is True and "uplicate" in again["message"]
    assert (again["task"]["id"], again["task"]["task_payload_prefix"]) == (first["id"], first["task_payload_prefix"])
    assert again["task"]["max_retries"] == first["max_retries"] + 1
    assert Job.objects.filter(pipeline=pipeline).count() == 1
    # Another payload or task is no duplicate.
    other_task = ok(tasks.post("/tasks/OtherTask", {"name": "first", "count": 2}), 201)["task"]
    assert other_task["id"] != first["id"]
    v1 = ok(tasks.post(f"/api/v1/tasks/{TASK}", {"name": "v1"}), 201)["task"]

    # -- bad input: an unknown task name lists the valid ones; a refused payload -----------------
    names = set(Pipeline.objects.filter(is_active=True).values_list("name", flat=True))
    for unknown in ("NoSuchTask", "x" * 101):
        body = refused(tasks.post(f"/tasks/{unknown}", {"name": "x"}), 422)
        [item] = fastapi_detail(body)
        assert (item["loc"], item["type"]) == (["path", "task_name"], "enum")
        assert f"'{TASK}'" in item["msg"] and "'OtherTask'" in item["msg"]
        assert set(body["details"]["valid_values"]) == names
    for payload, field in (({}, "name"), ({"name": 5}, "name"), ({"name": "x", "count": "two"}, "count")):
        items = fastapi_detail(refused(tasks.post(f"/tasks/{TASK}", payload), 422))
        assert all(item["loc"][0] == "body" for item in items) and any(field in item["msg"] for item in items)
    for payload in (["name"], "name"):
        assert all(loc[0] == "body" for loc in locs(refused(tasks.post(f"/tasks/{TASK}", payload), 422)))

    # -- POST /tasks/{task_name}/batch -----------------------------------------------------------
    payloads = [
        {"name": "a"},
        {"count": 1},
        {"name": "first", "count": 2},
        "not an object",
        {"name": "a"},
        {"name": "b"},
    ]
    batch = ok(tasks.post(f"/tasks/{TASK}/batch", payloads))
    results = batch["results"]
    assert [item["index"] for item in results] == list(range(6))
    assert [item["success"] for item in results] == [True, False, True, False, True, True]
    assert [item["duplicate"] for item in results] == [False, False, True, False, True, False]
    assert (results[2]["id"], results[4]["id"]) == (first["id"], results[0]["id"])
    assert results[1]["id"] is None and results[1]["errors"][0]["loc"][:2] == ["body", 1]
    assert results[3]["errors"][0]["loc"][:2] == ["body", 3]
    assert {item["status"] for item in results if item["success"] and not item["duplicate"]} == {"not_started"}
    assert (batch["created"], batch["duplicates"], batch["failed"]) == (2, 2, 2)
    assert task(first["id"])["max_retries"] == first["max_retries"] + 2
    for not_a_batch in ([], {"name": "x"}, "x", [{"name": "x"}] * 501):
        assert locs(refused(tasks.post(f"/tasks/{TASK}/batch", not_a_batch), 422)) == [["body"]]
    assert locs(refused(tasks.post("/tasks/NoSuchTask/batch", [{"name": "x"}]), 422)) == [["path", "task_name"]]

    # -- GET /tasks/{task_id}: the full DatabaseTask, its result parsed --------------------------
    real = [first["id"], other_task["id"], v1["id"], results[0]["id"], results[5]["id"]]
    for task_id in real:
        assert settled(task_id)["status"] == "success", task_id
    done = task(first["id"])
    assert set(done) >= TASK_FIELDS
    assert (done["status"], done["result_data"], done["task_payload"]) == (
        "success",
        {"name": "first", "count": 2},
        {"name": "first", "count": 2},
    )
    assert task(f"{v1['id']}/")["task_payload"] == {"name": "v1"}
    assert ok(tasks.get(f"/api/v1/tasks/{v1['id']}/"))["id"] == v1["id"]
    assert refused(tasks.get(f"/tasks/{uuid.uuid4()}"), 404)["detail"] == "Task not found."
    for not_a_uuid in ("1", "42", "abc"):
        assert locs(refused(tasks.get(f"/tasks/{not_a_uuid}"), 422)) == [["path", "task_id"]]

    # -- GET /tasks: task_name, status in the task vocabulary, page, page_size -------------------
    by_status = {
        status: str(JobFactory(pipeline=pipeline, status=status).pk) for status in set().union(*TASK_STATUSES.values())
    }
    for status, task_id in by_status.items():
        assert (task(task_id)["status"], task(task_id)["job_status"]) == (task_status(status), status)
    for name in TASK_STATUSES:
        body = ok(tasks.get("/tasks", {"task_name": TASK, "status": name, "page_size": "100"}))
        expected = {
            str(pk)
            for pk, status in Job.objects.filter(pipeline=pipeline).values_list("pk", "status")
            if task_status(status) == name
        }
        assert {t["id"] for t in body["tasks"]} == expected and body["total"] == len(expected), name
        assert {t["status"] for t in body["tasks"]} == {name}
    for status in ("completed", "running", "SUCCESS", "done"):
        body = refused(tasks.get("/tasks", {"status": status}), 422)
        assert locs(body) == [["query", "status"]] and body["details"]["valid_values"] == list(TASK_STATUSES)
    assert [t["task_name"] for t in ok(tasks.get("/tasks", {"task_name": "OtherTask"}))["tasks"]] == ["OtherTask"]
    assert ok(tasks.get("/tasks", {"task_name": "Other"}))["total"] == 0

    Job.objects.bulk_create(
        JobFactory.build(pipeline=other, created_at=timezone.now() - timedelta(seconds=n + 1)) for n in range(60)
    )
    total = Job.objects.count()
    assert 50 < total <= 100
    everything = ok(tasks.get("/tasks", {"page_size": "100"}))
    assert set(everything) == {"tasks", "total", "page", "page_size", "pages", "total_estimated"}
    ids = [t["id"] for t in everything["tasks"]]
    assert (len(ids), len(set(ids)), everything["total"]) == (total, total, total)
    assert {str(pk) for pk in Job.objects.values_list("pk", flat=True)} == set(ids)
    created = [parse_time(t["created_at"]) for t in everything["tasks"]]
    assert created == sorted(created, reverse=True)  # newest first
    assert TASK_FIELDS - {"result_data"} <= set(everything["tasks"][0])
    default = ok(tasks.get("/tasks"))
    assert (default["page"], default["page_size"], default["pages"], default["total"]) == (
        1,
        50,
        math.ceil(total / 50),
        total,
    )
    assert [t["id"] for t in default["tasks"]] == ids[:50]
    for params, window in (
        ({"page": "2"}, (50, 100)),
        ({"page_size": "1"}, (0, 1)),
        ({"page": "3", "page_size": "25"}, (50, 75)),
        ({"page": "99"}, (0, 0)),
    ):
        body = ok(tasks.get("/tasks", params))
        assert [t["id"] for t in body["tasks"]] == ids[window[0] : window[1]], params
        assert (body["page"], body["page_size"]) == (int(params.get("page", 1)), int(params.get("page_size", 50)))
    for param, value in (
        ("page", "0"),
        ("page", "-1"),
        ("page", "x"),
        ("page_size", "0"),
        ("page_size", "101"),
        ("page_size", "1.5"),
    ):
        assert locs(refused(tasks.get("/tasks", {param: value}), 422)) == [["query", param]], (param, value)
    for path in ("/tasks", "/tasks/stats"):
        assert "limit" in refused(tasks.get(path, {"limit": "10"}), 400)["details"]
    for path in ("/tasks/", "/api/v1/tasks", "/api/v1/tasks/"):
        assert ok(tasks.get(path, {"page_size": "100"}))["total"] == total, path

    # -- DELETE /tasks/{id} (cancel), PATCH /tasks/{id}/retry ------------------------------------
    cancelled = ok(tasks.delete(f"/tasks/{by_status['queued']}"))
    assert (cancelled["status"], cancelled["job_status"]) == ("error", "cancelled")
    assert refused(tasks.delete(f"/tasks/{first['id']}"), 409)["detail"]
    Job.objects.filter(pk=by_status["failed"]).update(input_data={"name": "again"}, error_message="boom")
    retried = ok(tasks.patch(f"/tasks/{by_status['failed']}/retry"))
    assert (retried["status"], retried["error_message"]) == ("not_started", None)
    rerun = settled(by_status["failed"])
    assert (rerun["status"], rerun["result_data"]) == ("success", {"name": "again"})
    refused(tasks.patch(f"/tasks/{first['id']}/retry"), 409)
    for method, suffix in (("DELETE", ""), ("PATCH", "/retry")):
        refused(tasks(method, f"/tasks/{uuid.uuid4()}{suffix}"), 404)

    # -- GET /tasks/stats (not a task id): success rate, average processing time -----------------
    stats = ok(tasks.get("/tasks/stats"))
    jobs = list(Job.objects.all())
    counts = {name: sum(task_status(job.status) == name for job in jobs) for name in TASK_STATUSES}
    assert (stats["total"], stats["counts"]) == (len(jobs), counts)
    assert stats["success_rate"] == pytest.approx(counts["success"] / (counts["success"] + counts["error"]), abs=1e-4)
    durations = [job.duration_ms for job in jobs if job.status == "completed" and job.duration_ms is not None]
    assert stats["avg_processing_time_ms"] == pytest.approx(sum(durations) / len(durations), abs=0.05)
    per_task = {entry["task_name"]: entry for entry in stats["tasks"]}
    assert per_task[TASK]["total"] == Job.objects.filter(pipeline=pipeline).count()
    assert ok(tasks.get("/tasks/stats/"))["total"] == len(jobs)
    assert ok(tasks.get("/tasks/stats", {"window": "7d"}))["total"] == len(jobs)
    assert locs(refused(tasks.get("/tasks/stats", {"window": "1y"}), 422)) == [["query", "window"]]


# == D. The starter job API (seed 004) ============================================================

STARTER_FIELDS = {"job_id", "job_type", "status", "user_id", "job_parameters", "created_at", "error_message"}


def test_starter_app_clients_are_served_their_whole_contract(site):
    alice = user_with_password("alice", "submitter")
    bob = grant_role(UserFactory(username="bob"), "submitter")
    no_role = UserFactory(username="nobody")
    anonymous = Client(site, "anon")

    # -- /health, /health/db, /docs ---------------------------------------------------------------
    assert ok(anonymous.get("/health")) == {"status": "ok"}
    assert ok(anonymous.get("/health/db")) == {"status": "ok"}
    docs = requests.get(f"{site}/docs", allow_redirects=False, timeout=20)
    assert (docs.status_code, docs.headers["Location"]) == (302, "/api/docs/")
    # The page itself needs `collectstatic` (as the Dockerfile runs it); the schema it shows documents /jobs.
    schema = ok(requests.get(f"{site}/api/schema/", params={"format": "json"}, timeout=20))
    assert {"/jobs", "/jobs/{job_id}"} <= set(schema["paths"])

    # -- a JWT on every call ------------------------------------------------------------------------
    me = Client(site, "starter", **bearer(log_in(site, "alice")["access"]))
    for method, path in (("GET", "/jobs"), ("POST", "/jobs"), ("GET", f"/jobs/{uuid.uuid4()}")):
        for auth in (
            {},
            {"Authorization": "Bearer not-a-token"},
            {"Authorization": credentials.foreign_key_jwt_for(alice)["HTTP_AUTHORIZATION"]},
            {"X-API-Secret": LLM_SECRET},
        ):
            response = anonymous(method, path, json={"job_type": "sample_task", "job_parameters": {}}, headers=auth)
            assert refused(response, 401)["detail"], (method, path, auth)
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
    nobody = Client(site, "nobody", **api_key(no_role))  # a user's key stands for the user, as a JWT does
    refused(nobody.post("/jobs", {"job_type": "sample_task", "job_parameters": {}}), 403)
    assert not Job.objects.exists()

    # -- POST /jobs {job_type, job_parameters} -----------------------------------------------------
    sample = ok(me.post("/jobs", {"job_type": "sample_task", "job_parameters": {}}), 201)
    assert set(sample) >= STARTER_FIELDS
    assert (sample["job_type"], sample["job_parameters"], sample["user_id"]) == ("sample_task", {}, str(alice.pk))
    assert sample["status"] in ("pending", "queued") and sample["error_message"] is None
    twice = ok(me.post("/jobs", {"job_type": "sample_task", "job_parameters": {}}), 201)
    assert twice["job_id"] != sample["job_id"]  # no duplicate check
    text = ok(me.post("/jobs/", {"job_type": "text-analysis", "job_parameters": {"text": "Hi there. Bye."}}), 201)
    for body, loc in (
        ({"job_parameters": {}}, ["body", "job_type"]),
        ({"job_type": "no_such_type"}, ["body", "job_type"]),
        ({"job_type": "sample_task", "job_parameters": []}, ["body", "job_parameters"]),
        ({"job_type": "sample_task", "job_parameters": "x"}, ["body", "job_parameters"]),
        ({"job_type": "text-analysis", "job_parameters": {}}, ["body", "job_parameters"]),
        (["sample_task"], ["body"]),
    ):
        unprocessable(me.post("/jobs", body), loc)
    unknown = refused(me.post("/jobs", {"job_type": "no_such_type"}), 422)
    assert fastapi_detail(unknown)[0]["type"] == "enum"
    assert unknown["details"]["valid_values"] == ["sample_task", "text-analysis"]
    assert Job.objects.count() == 3

    # /health/db is a 503 when the database is unreachable: a server of its own, started while the worker runs.
    cut_off = child_env(DATABASE_URL="postgres://postgres@127.0.0.1:1/unreachable", DRAMATIQ_BROKER_URL="stub")
    with web_server(cut_off) as unreachable:
        assert requests.get(f"{unreachable}/health", timeout=20).json() == {"status": "ok"}
        down = requests.get(f"{unreachable}/health/db", timeout=20)
        assert (down.status_code, down.json()) == (503, {"status": "unavailable"})

    # -- GET /jobs/{job_id}: the caller's job, with its result once completed ----------------------
    mine = [sample["job_id"], twice["job_id"], text["job_id"]]
    finals = {
        job_id: wait_for(lambda j=job_id: ok(me.get(f"/jobs/{j}")), lambda b: b["status"] in TERMINAL)
        for job_id in mine
    }
    analysed = finals[text["job_id"]]
    assert (analysed["status"], analysed["job_type"], analysed["job_parameters"]) == (
        "completed",
        "text-analysis",
        {"text": "Hi there. Bye."},
    )
    assert (analysed["result"]["words"], analysed["user_id"]) == (3, str(alice.pk))
    assert {final["status"] for final in finals.values()} == {"completed"}
    assert ok(me.get(f"/jobs/{sample['job_id']}/"))["job_id"] == sample["job_id"]
    theirs = ok(Client(site, "bob", **api_key(bob)).post("/jobs", {"job_type": "sample_task"}), 201)
    assert theirs["user_id"] == str(bob.pk)
    assert refused(me.get(f"/jobs/{theirs['job_id']}"), 404)["detail"] == "Job not found."
    for unknown_id in (uuid.uuid4(), "not-a-uuid", "7"):
        refused(me.get(f"/jobs/{unknown_id}"), 404)

    # -- GET /jobs: the caller's jobs only; status, job_type, limit, offset ------------------------
    resize, crop = PipelineFactory(name="resize"), PipelineFactory(name="crop")
    named = {
        "resize-failed": JobFactory(pipeline=resize, user_id=alice.pk, status=JobStatus.FAILED, error_message="boom"),
        "resize-pending": JobFactory(pipeline=resize, user_id=alice.pk, status=JobStatus.PENDING),
        "crop-processing": JobFactory(pipeline=crop, user_id=alice.pk, status=JobStatus.PROCESSING),
        "crop-completed": JobFactory(pipeline=crop, user_id=alice.pk, status=JobStatus.COMPLETED),
    }
    JobFactory(pipeline=crop, user_id=bob.pk, status=JobStatus.FAILED)
    listed = ok(me.get("/jobs"))
    assert {"jobs", "total", "limit", "offset"} <= set(listed)
    everything = [row["job_id"] for row in listed["jobs"]]
    assert set(everything) == set(mine) | {str(job.pk) for job in named.values()}
    assert (listed["total"], listed["limit"], listed["offset"]) == (7, 50, 0)
    assert set(listed["jobs"][0]) >= STARTER_FIELDS
    created = [parse_time(row["created_at"]) for row in listed["jobs"]]
    assert created == sorted(created, reverse=True)
    for params, expected in (
        ({"status": "pending"}, {"resize-pending"}),
        ({"status": "processing"}, {"crop-processing"}),
        ({"status": "failed"}, {"resize-failed"}),
        ({"job_type": "resize"}, {"resize-failed", "resize-pending"}),
        ({"job_type": "crop", "status": "completed"}, {"crop-completed"}),
        ({"job_type": "rotate"}, set()),
    ):
        rows = ok(me.get("/jobs", params))["jobs"]
        assert {row["job_id"] for row in rows} == {str(named[name].pk) for name in expected}, params
    failed_row = ok(me.get("/jobs", {"status": "failed"}))["jobs"][0]
    assert (failed_row["status"], failed_row["error_message"]) == ("failed", "boom")
    assert {
        row["job_id"] for row in ok(me.get("/jobs", {"status": "completed", "job_type": "sample_task"}))["jobs"]
    } == {
        sample["job_id"],
        twice["job_id"],
    }
    window = ok(me.get("/jobs", {"limit": "2", "offset": "1"}))
    assert [row["job_id"] for row in window["jobs"]] == everything[1:3]
    assert (window["total"], window["limit"], window["offset"]) == (7, 2, 1)
    assert len(ok(me.get("/jobs/", {"limit": "200"}))["jobs"]) == 7
    for param, value in (("limit", "0"), ("limit", "201"), ("limit", "x"), ("offset", "-1"), ("status", "bogus")):
        assert locs(refused(me.get("/jobs", {param: value}), 422)) == [["query", param]], (param, value)
    assert "page" in refused(me.get("/jobs", {"page": "2"}), 400)["details"]
    refused(me.get(f"/jobs/{uuid.uuid4()}/result"), 404)
