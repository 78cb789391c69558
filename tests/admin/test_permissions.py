"""Every admin page and action against every role: operator, auditor, staff submitter (with and without
permission to act), staff without a role, and a non-staff user.

Operators see and act; auditors read only; a staff submitter sees only their own jobs and acts on them only
with the permission to; what a role cannot open is not shown.
"""

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME

from jobs.models import BulkOperation, Job, JobResult
from tests.admin.conftest import client_for, staff_user
from tests.factories import JobFactory, UserFactory

ROLES = ["operator", "auditor", "submitter", "submitter_acting", "staff_only", "not_staff"]


@pytest.fixture
def world(db, stub_broker):
    users = {
        "operator": staff_user("op", "operator"),
        "auditor": staff_user("aud", "auditor"),
        "submitter": staff_user("sub", "submitter"),
        "submitter_acting": staff_user("sub2", "submitter", "jobs.cancel_job", "jobs.retry_job"),
        "staff_only": staff_user("plain"),
        "not_staff": UserFactory(username="outsider"),
    }
    from tests.conftest import grant_role

    grant_role(users["not_staff"], "operator")
    others = JobFactory(status="failed")
    JobResult.objects.create(job=others, result={"n": 1}, size_bytes=7)
    return {
        "users": users,
        "other_job": others,
        "own_job": {name: JobFactory(status="failed", user_id=user.pk) for name, user in users.items()},
        "operation": BulkOperation.objects.create(kind="retry", criteria={}, requested_by=users["operator"]),
    }


def client(world, role):
    return client_for(world["users"][role])


READERS = {"operator": 200, "auditor": 200, "submitter": 403, "submitter_acting": 403, "staff_only": 403}
EVERYONE = {"operator": 200, "auditor": 200, "submitter": 200, "submitter_acting": 200, "staff_only": 200}
JOB_READERS = {**EVERYONE, "staff_only": 403}
PAGES = {
    "/admin/": EVERYONE,
    "/admin/models/": EVERYONE,
    "/admin/jobs/job/": JOB_READERS,
    "/admin/jobs/job/failures/": READERS,
    "/admin/jobs/stagerun/": READERS,
    "/admin/jobs/jobresult/": READERS,
    "/admin/jobs/workerprocess/": READERS,
    "/admin/jobs/bulkoperation/": READERS,
    "/admin/dead-letters/": READERS,
    "/admin/audit/auditlog/": {**READERS, "operator": 403},
    "/admin/broker/brokermessage/": {role: 403 for role in READERS},  # the stub broker: nothing to show
    "/admin/django_dramatiq/task/": {role: 404 for role in READERS},
}
PAGE_CASES = [(page, role, expected) for page, table in PAGES.items() for role, expected in table.items()]


@pytest.mark.parametrize(("page", "role", "expected"), PAGE_CASES, ids=[f"{p}-{r}" for p, r, _ in PAGE_CASES])
def test_pages(world, page, role, expected):
    assert client(world, role).get(page).status_code == expected


@pytest.mark.parametrize("page", list(PAGES))
def test_no_page_opens_without_staff_status(world, page):
    response = client(world, "not_staff").get(page)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_the_index_is_the_dashboard_only_for_those_who_see_every_job(world):
    for role in ("operator", "auditor"):
        assert 'id="dashboard"' in client(world, role).get("/admin/").content.decode()
    for role in ("submitter", "staff_only"):
        html = client(world, role).get("/admin/").content.decode()
        assert 'id="dashboard"' not in html
        assert "Failure triage" not in html and "Dead letters" not in html and ">Workers</a>" not in html


def test_what_a_role_cannot_open_is_not_shown(world):
    op_html = client(world, "operator").get("/admin/models/").content.decode()
    assert ">Workers</a>" in op_html and "Bulk operations" in op_html and "Dead letters" in op_html
    assert "Audit log" not in op_html and "Broker messages" not in op_html
    aud_html = client(world, "auditor").get("/admin/models/").content.decode()
    assert "Audit log" in aud_html and ">Workers</a>" in aud_html
    sub_html = client(world, "submitter").get("/admin/models/").content.decode()
    assert "Jobs" in sub_html and "Stage runs" not in sub_html and ">Workers</a>" not in sub_html


# --- the job list and the job page: whose jobs each role sees ---------------------------------


def listed(world, role) -> set[str]:
    import re

    html = client(world, role).get("/admin/jobs/job/").content.decode()
    return set(re.findall(r'<code title="([0-9a-f-]{36})">', html))


def test_operators_and_auditors_list_every_job_a_submitter_only_their_own(world):
    everything = {str(j.pk) for j in Job.objects.all()}
    assert listed(world, "operator") == everything
    assert listed(world, "auditor") == everything
    assert listed(world, "submitter") == {str(world["own_job"]["submitter"].pk)}


@pytest.mark.parametrize(
    ("role", "own", "other"),
    [("operator", 200, 200), ("auditor", 200, 200), ("submitter", 200, 302), ("staff_only", 403, 302)],
)
def test_job_pages_and_result_downloads(world, role, own, other):
    browser = client(world, role)
    own_job, other_job = world["own_job"][role], world["other_job"]
    assert browser.get(f"/admin/jobs/job/{own_job.pk}/change/").status_code == own
    assert browser.get(f"/admin/jobs/job/{other_job.pk}/change/").status_code == other
    expected_download = {200: 200, 302: 404}[other]
    assert browser.get(f"/admin/jobs/job/{other_job.pk}/result/").status_code == expected_download


def test_readers_see_no_action_anywhere(world):
    browser = client(world, "auditor")
    assert '<select name="action"' not in browser.get("/admin/jobs/job/").content.decode()
    page = browser.get(f"/admin/jobs/job/{world['own_job']['auditor'].pk}/change/").content.decode()
    assert "data-action=" not in page
    assert "Retry all in this group" not in browser.get("/admin/jobs/job/failures/").content.decode()


def test_a_staff_submitter_sees_only_the_actions_of_its_role(world):
    """The submitter role cancels and retries its own jobs (as over the API); requeue and delete are operators'."""
    browser = client(world, "submitter")
    html = browser.get("/admin/jobs/job/").content.decode()
    assert 'value="cancel_jobs"' in html and 'value="retry_jobs"' in html
    assert 'value="requeue_jobs"' not in html and 'value="delete_jobs"' not in html
    page = browser.get(f"/admin/jobs/job/{world['own_job']['submitter'].pk}/change/").content.decode()
    assert 'data-action="retry"' in page and 'data-action="delete"' not in page


def test_the_operator_sees_every_action(world):
    browser = client(world, "operator")
    html = browser.get("/admin/jobs/job/").content.decode()
    for action in ("cancel_jobs", "retry_jobs", "retry_jobs_from_start", "requeue_jobs", "delete_jobs"):
        assert f'value="{action}"' in html
    assert 'value="delete_selected"' not in html
    page = browser.get(f"/admin/jobs/job/{world['other_job'].pk}/change/").content.decode()
    assert 'data-action="retry"' in page and 'data-action="retry_from_start"' in page and 'data-action="delete"' in page


# --- actions --------------------------------------------------------------------------------------

LIST_ACTIONS = ["cancel_jobs", "retry_jobs", "retry_jobs_from_start", "requeue_jobs", "delete_jobs"]
# A submitter may cancel and retry (its own jobs): the actions it has not are requeue and delete.
ACTION_CASES = [
    (action, role)
    for action in LIST_ACTIONS
    for role in ("auditor", "submitter", "staff_only")
    if role != "submitter" or action in ("requeue_jobs", "delete_jobs")
]


@pytest.mark.parametrize(("action", "role"), ACTION_CASES, ids=[f"{a}-{r}" for a, r in ACTION_CASES])
def test_list_actions_change_nothing_for_roles_without_them(world, action, role):
    job = world["own_job"][role]
    before = list(Job.objects.order_by("pk").values_list("pk", "status"))
    data = {"action": action, ACTION_CHECKBOX_NAME: [str(job.pk), str(world["other_job"].pk)], "index": 0}
    response = client(world, role).post("/admin/jobs/job/", {**data, "post": "yes"})
    assert response.status_code in (200, 302, 403)
    assert list(Job.objects.order_by("pk").values_list("pk", "status")) == before
    assert not BulkOperation.objects.exclude(pk=world["operation"].pk).exists()


@pytest.mark.parametrize("action", LIST_ACTIONS)
def test_the_operator_may_run_every_list_action(world, action, django_capture_on_commit_callbacks):
    job = world["other_job"]
    data = {"action": action, ACTION_CHECKBOX_NAME: [str(job.pk)], "index": 0, "post": "yes"}
    with django_capture_on_commit_callbacks(execute=True):
        client(world, "operator").post("/admin/jobs/job/", data)
    after = Job.objects.filter(pk=job.pk).values_list("status", flat=True).first()
    assert after == {"cancel_jobs": "failed", "requeue_jobs": "failed", "delete_jobs": None}.get(action, "queued")


def test_a_submitter_who_may_act_acts_on_their_own_jobs_only(world):
    browser = client(world, "submitter_acting")
    own = JobFactory(status="queued", user_id=world["users"]["submitter_acting"].pk)
    theirs = JobFactory(status="queued")
    data = {"action": "cancel_jobs", ACTION_CHECKBOX_NAME: [str(own.pk), str(theirs.pk)], "index": 0}
    browser.post("/admin/jobs/job/", data)
    assert (Job.objects.get(pk=own.pk).status, Job.objects.get(pk=theirs.pk).status) == ("cancelled", "queued")
    assert browser.post(f"/admin/jobs/job/{theirs.pk}/act/cancel/").status_code == 302
    assert Job.objects.get(pk=theirs.pk).status == "queued"

    browser.post("/admin/jobs/job/?status=queued", {**data, "select_across": "1"})
    operation = BulkOperation.objects.get(requested_by=world["users"]["submitter_acting"])
    assert operation.criteria["owner"] == str(world["users"]["submitter_acting"].pk)
    assert 'value="delete_jobs"' not in browser.get("/admin/jobs/job/").content.decode()


@pytest.mark.parametrize(
    ("role", "expected"), [("operator", 302), ("auditor", 403), ("submitter", 302), ("staff_only", 403)]
)
def test_job_page_buttons(world, role, expected):
    job = world["own_job"][role]
    response = client(world, role).post(f"/admin/jobs/job/{job.pk}/act/retry_from_start/")
    assert response.status_code == expected
    assert Job.objects.get(pk=job.pk).status == ("pending" if expected == 302 else "failed")


@pytest.mark.parametrize(
    ("role", "expected"), [("operator", 200), ("auditor", 403), ("submitter", 403), ("staff_only", 403)]
)
def test_the_delete_page(world, role, expected):
    job = world["own_job"][role]
    assert client(world, role).get(f"/admin/jobs/job/{job.pk}/delete/").status_code == expected


@pytest.mark.parametrize(
    ("role", "expected"), [("operator", 302), ("auditor", 403), ("submitter", 403), ("staff_only", 403)]
)
def test_retry_a_failure_group(world, role, expected):
    response = client(world, role).post("/admin/jobs/job/failures/retry/", {"window": "24h", "error": ""})
    assert response.status_code == expected
    assert BulkOperation.objects.count() == (2 if expected == 302 else 1)


@pytest.mark.parametrize(
    ("role", "requeue", "purge"),
    [("operator", 302, 302), ("auditor", 403, 403), ("submitter", 403, 403), ("staff_only", 403, 403)],
)
def test_dead_letter_requeue_and_purge(world, role, requeue, purge):
    browser = client(world, role)
    assert browser.post("/admin/dead-letters/maintenance/requeue/").status_code == requeue
    assert browser.post("/admin/dead-letters/maintenance/purge/").status_code == purge


@pytest.mark.parametrize(
    ("role", "expected"), [("operator", 302), ("auditor", 403), ("submitter", 404), ("staff_only", 404)]
)
def test_stopping_a_bulk_operation(world, role, expected):
    """Another user's operation does not exist for those who see only their own."""
    operation = world["operation"]
    response = client(world, role).post(f"/admin/jobs/bulkoperation/{operation.pk}/stop/")
    operation.refresh_from_db()
    assert response.status_code == expected
    assert operation.stop_requested is (expected == 302)
