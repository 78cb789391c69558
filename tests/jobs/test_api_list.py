"""`GET /api/v1/jobs/`: filters, `limit_results`, pagination bounds, ordering, the summary shape, the count."""

import time
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlparse

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from jobs.models import Job, JobStatus
from tests import credentials
from tests.factories import JobFactory, PipelineFactory
from tests.jobs.test_api import SUMMARY_FIELDS

JOBS_URL = "/api/v1/jobs/"
PAGE_FIELDS = {"jobs", "total", "limit", "offset", "total_estimated", "next", "previous"}

ALL_STATUSES = {
    "pending",
    "scheduled",
    "queued",
    "processing",
    "retrying",
    "completed",
    "failed",
    "cancelling",
    "cancelled",
}
TERMINAL_STATUSES = {"completed", "failed", "cancelled"}
STATUS_GROUP_NAMES = {"running", "active", "completed", "failed", "all"}


# -- helpers and fixtures ---------------------------------------------------------------


def client_for(user) -> APIClient:
    client = APIClient()
    client.credentials(**credentials.jwt_for(user))
    return client


@pytest.fixture
def submitter_client(user):
    return client_for(user)


@pytest.fixture
def operator_client(operator_user):
    return client_for(operator_user)


@pytest.fixture
def pipeline(db):
    return PipelineFactory(name="resize")


def make_jobs(pipeline, count: int, **fields) -> list[Job]:
    """Insert `count` jobs in one statement."""
    return Job.objects.bulk_create([JobFactory.build(pipeline=pipeline, **fields) for _ in range(count)])


def set_created_at(job: Job, when: datetime) -> None:
    Job.objects.filter(pk=job.pk).update(created_at=when)


def list_jobs(client, params: dict | str | None = None):
    """GET the list; a dict is URL-encoded (so `+00:00` and `7 Days` survive), a string is used as is."""
    if isinstance(params, str):
        return client.get(f"{JOBS_URL}?{params}")
    return client.get(JOBS_URL, params or {})


def ok(response) -> dict:
    assert response.status_code == 200, response.content
    return response.json()


def result_ids(body: dict) -> list[str]:
    return [row["job_id"] for row in body["jobs"]]


def as_ids(jobs) -> list[str]:
    return [str(job.pk) for job in jobs]


def assert_rejected(response, param: str, status_code: int = 400) -> dict:
    """A 400 (or `status_code`) in the error envelope whose details name `param`; return the details."""
    assert response.status_code == status_code, response.content
    body = response.json()
    assert body["error"] == "validation_error"
    assert param in body["details"], body["details"]
    assert body["details"][param], body["details"]
    return body["details"]


def query_of(link: str) -> dict[str, list[str]]:
    return parse_qs(urlparse(link).query)


# -- status -----------------------------------------------------------------------------


@pytest.fixture
def one_job_per_status(pipeline):
    return {job.status: str(job.pk) for job in (JobFactory(pipeline=pipeline, status=s) for s in JobStatus.values)}


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("running", {"queued", "processing"}),
        ("active", ALL_STATUSES - TERMINAL_STATUSES),
        ("completed", {"completed"}),
        ("failed", {"failed"}),
        ("all", ALL_STATUSES),
        ("failed,cancelled", {"failed", "cancelled"}),
        ("running,completed", {"queued", "processing", "completed"}),
        ("running,queued", {"queued", "processing"}),
        *((exact, {exact}) for exact in sorted(ALL_STATUSES)),
    ],
)
def test_status_filter_returns_exactly_the_statuses_it_names(service_client, one_job_per_status, status, expected):
    body = ok(list_jobs(service_client, {"status": status}))

    assert {row["status"] for row in body["jobs"]} == expected
    assert sorted(result_ids(body)) == sorted(one_job_per_status[s] for s in expected)
    assert body["total"] == len(expected)


def test_list_without_status_returns_every_status(service_client, one_job_per_status):
    body = ok(list_jobs(service_client))

    assert {row["status"] for row in body["jobs"]} == ALL_STATUSES
    assert body["total"] == len(ALL_STATUSES)


@pytest.mark.parametrize("status", ["bogus", "running,bogus", "RUNNING"])
def test_unknown_status_is_rejected_with_the_valid_values(service_client, one_job_per_status, status):
    bad = status.split(",")[-1]

    details = assert_rejected(list_jobs(service_client, {"status": status}), "status")

    assert repr(bad) in " ".join(details["status"])
    assert set(details["valid_values"]) == STATUS_GROUP_NAMES | ALL_STATUSES


# -- user_id ----------------------------------------------------------------------------


@pytest.fixture
def jobs_of_two_users(pipeline, user, other_user):
    return {
        "own": make_jobs(pipeline, 2, user_id=user.pk),
        "other": make_jobs(pipeline, 1, user_id=other_user.pk),
        "nobody": make_jobs(pipeline, 1, user_id=None),
    }


@pytest.mark.parametrize("caller", ["operator", "service"])
def test_privileged_caller_narrows_the_list_with_user_id(
    operator_client, service_client, user, jobs_of_two_users, caller
):
    client = operator_client if caller == "operator" else service_client

    everything = ok(list_jobs(client))
    narrowed = ok(list_jobs(client, {"user_id": str(user.pk)}))

    assert everything["total"] == 4
    assert sorted(result_ids(narrowed)) == sorted(as_ids(jobs_of_two_users["own"]))
    assert narrowed["total"] == 2


def test_submitter_sees_only_their_own_jobs(submitter_client, jobs_of_two_users):
    body = ok(list_jobs(submitter_client))

    assert sorted(result_ids(body)) == sorted(as_ids(jobs_of_two_users["own"]))


def test_submitter_asking_for_another_users_jobs_gets_none(submitter_client, other_user, jobs_of_two_users):
    body = ok(list_jobs(submitter_client, {"user_id": str(other_user.pk)}))

    assert body["jobs"] == []
    assert body["total"] == 0


def test_submitter_filtering_on_their_own_id_gets_their_jobs(submitter_client, user, jobs_of_two_users):
    body = ok(list_jobs(submitter_client, {"user_id": str(user.pk)}))

    assert sorted(result_ids(body)) == sorted(as_ids(jobs_of_two_users["own"]))


@pytest.mark.parametrize("value", ["not-a-uuid", "123", "4b6a9ef8-a991-49a5-a3dc-39ce02f1adb"])
def test_invalid_user_id_is_rejected(service_client, db, value):
    assert_rejected(list_jobs(service_client, {"user_id": value}), "user_id")


# -- pipeline, username, action, search -------------------------------------------------


def test_pipeline_filter_matches_the_name_exactly(service_client, pipeline):
    wanted = make_jobs(pipeline, 2)
    make_jobs(PipelineFactory(name="resize-large"), 1)
    make_jobs(PipelineFactory(name="translate"), 1)

    body = ok(list_jobs(service_client, {"pipeline": "resize"}))

    assert sorted(result_ids(body)) == sorted(as_ids(wanted))
    assert {row["workflow_name"] for row in body["jobs"]} == {"resize"}
    assert ok(list_jobs(service_client, {"pipeline": "no-such-pipeline"}))["total"] == 0


def test_username_filter_matches_exactly(service_client, pipeline):
    wanted = make_jobs(pipeline, 2, username="carol")
    make_jobs(pipeline, 1, username="carol2")
    make_jobs(pipeline, 1, username="dave")

    body = ok(list_jobs(service_client, {"username": "carol"}))

    assert sorted(result_ids(body)) == sorted(as_ids(wanted))


def test_action_filter_matches_exactly(service_client, pipeline):
    wanted = make_jobs(pipeline, 1, action="thumbnail")
    make_jobs(pipeline, 1, action="thumbnail-large")
    make_jobs(pipeline, 1, action="crop")

    body = ok(list_jobs(service_client, {"action": "thumbnail"}))

    assert result_ids(body) == as_ids(wanted)


def test_search_matches_username_or_action_case_insensitively(service_client, pipeline):
    by_action = JobFactory(pipeline=pipeline, username="carol", action="Resize the avatar")
    by_username = JobFactory(pipeline=pipeline, username="resize-bot", action="thumbnail")
    JobFactory(pipeline=pipeline, username="dave", action="translate")

    body = ok(list_jobs(service_client, {"search": "RESIZE"}))

    assert sorted(result_ids(body)) == sorted(as_ids([by_action, by_username]))


def test_search_stays_within_the_submitters_own_jobs(submitter_client, pipeline, user, other_user):
    own = JobFactory(pipeline=pipeline, user_id=user.pk, action="resize")
    JobFactory(pipeline=pipeline, user_id=other_user.pk, action="resize")

    body = ok(list_jobs(submitter_client, {"search": "resize"}))

    assert result_ids(body) == as_ids([own])


# -- created_after / created_before -----------------------------------------------------


@pytest.fixture
def jobs_hours_apart(pipeline):
    """Jobs created 3, 2 and 1 hours ago, oldest first, with the reference time."""
    now = timezone.now().replace(microsecond=0)
    jobs = make_jobs(pipeline, 3)
    for hours, job in zip((3, 2, 1), jobs, strict=True):
        set_created_at(job, now - timedelta(hours=hours))
    return now, jobs


@pytest.mark.parametrize("fmt", ["offset", "zulu"])
def test_created_after_and_before_bound_the_list(service_client, jobs_hours_apart, fmt):
    now, (three, two, one) = jobs_hours_apart

    def iso(moment: datetime) -> str:
        text = moment.isoformat()
        return text.replace("+00:00", "Z") if fmt == "zulu" else text

    after = ok(list_jobs(service_client, {"created_after": iso(now - timedelta(hours=2, minutes=30))}))
    before = ok(list_jobs(service_client, {"created_before": iso(now - timedelta(hours=1, minutes=30))}))
    window = ok(
        list_jobs(
            service_client,
            {
                "created_after": iso(now - timedelta(hours=2, minutes=30)),
                "created_before": iso(now - timedelta(hours=1, minutes=30)),
            },
        )
    )

    assert result_ids(after) == as_ids([one, two])
    assert result_ids(before) == as_ids([two, three])
    assert result_ids(window) == as_ids([two])


@pytest.mark.parametrize("param", ["created_after", "created_before"])
@pytest.mark.parametrize("value", ["yesterday", "2025-13-01T00:00:00Z", "2025-01-01T25:00"])
def test_invalid_created_bound_is_rejected(service_client, db, param, value):
    assert_rejected(list_jobs(service_client, {param: value}), param)


# -- limit_results ----------------------------------------------------------------------


@pytest.fixture
def many_jobs(pipeline):
    return make_jobs(pipeline, 260)


def test_numeric_limit_results_may_exceed_the_200_page_maximum(service_client, many_jobs):
    body = ok(list_jobs(service_client, {"limit_results": "250"}))

    assert len(body["jobs"]) == 250
    assert body["total"] == 260
    assert body["next"] is not None
    rest = ok(service_client.get(body["next"]))
    assert len(rest["jobs"]) == 10
    assert set(result_ids(rest)).isdisjoint(result_ids(body))


def test_numeric_limit_results_overrides_limit(service_client, many_jobs):
    larger = ok(list_jobs(service_client, {"limit_results": "250", "limit": "10"}))
    smaller = ok(list_jobs(service_client, {"limit_results": "3", "limit": "100"}))

    assert len(larger["jobs"]) == 250
    assert len(smaller["jobs"]) == 3


@pytest.mark.parametrize(("value", "returned"), [("1", 1), ("500", 260)])
def test_limit_results_accepts_1_to_500(service_client, many_jobs, value, returned):
    body = ok(list_jobs(service_client, {"limit_results": value}))

    assert len(body["jobs"]) == returned
    assert body["total"] == 260


def _now_clear_of_midnight() -> datetime:
    """The current time, waiting out the last two seconds of a UTC day so the day cannot turn mid-test."""
    now = timezone.now()
    midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    if midnight - now < timedelta(seconds=2):
        time.sleep((midnight - now).total_seconds() + 0.05)
        now = timezone.now()
    return now


def test_limit_results_today_counts_from_midnight_utc(service_client, pipeline):
    now = _now_clear_of_midnight()
    today_start = datetime.combine(now.date(), datetime.min.time(), tzinfo=UTC)
    early_today, late_yesterday, just_now = make_jobs(pipeline, 3)
    # Within the first second of the day "00:00:01" would be in the future; stay at or before now.
    set_created_at(early_today, today_start + min(timedelta(seconds=1), now - today_start))
    set_created_at(late_yesterday, today_start - timedelta(seconds=1))
    set_created_at(just_now, now)

    body = ok(list_jobs(service_client, {"limit_results": "Today"}))

    assert sorted(result_ids(body)) == sorted(as_ids([early_today, just_now]))
    assert body["total"] == 2


@pytest.mark.parametrize(("period", "days"), [("7 Days", 7), ("30 Days", 30)])
def test_limit_results_period_counts_back_from_now(service_client, pipeline, period, days):
    now = timezone.now()
    recent, inside, outside, ancient = make_jobs(pipeline, 4)
    set_created_at(recent, now - timedelta(days=1))
    set_created_at(inside, now - timedelta(days=days) + timedelta(hours=1))
    set_created_at(outside, now - timedelta(days=days) - timedelta(hours=1))
    set_created_at(ancient, now - timedelta(days=40))

    body = ok(list_jobs(service_client, {"limit_results": period}))

    assert result_ids(body) == as_ids([recent, inside])
    assert body["total"] == 2


def test_limit_results_period_keeps_the_default_page_size(service_client, pipeline):
    make_jobs(pipeline, 51)

    body = ok(list_jobs(service_client, {"limit_results": "Today"}))

    assert len(body["jobs"]) == 50
    assert body["total"] == 51


@pytest.mark.parametrize("value", ["0", "501", "Yesterday", "-1", "abc", "1.5", "7 days"])
def test_invalid_limit_results_is_rejected_with_the_valid_values(service_client, db, value):
    details = assert_rejected(list_jobs(service_client, {"limit_results": value}), "limit_results")

    assert repr(value) in " ".join(details["limit_results"])
    valid = details["valid_values"]
    assert {"Today", "7 Days", "30 Days"} <= set(valid)
    assert any("500" in v for v in valid)


@pytest.mark.parametrize("value", ["²", "1²", "٣"])
def test_limit_results_with_a_non_decimal_digit_is_rejected(service_client, db, value):
    assert_rejected(list_jobs(service_client, {"limit_results": value}), "limit_results")


# -- limit / offset ---------------------------------------------------------------------


def test_default_page_is_50(service_client, pipeline):
    make_jobs(pipeline, 51)

    body = ok(list_jobs(service_client))

    assert len(body["jobs"]) == 50
    assert body["total"] == 51
    assert query_of(body["next"])["offset"] == ["50"]


def test_limit_up_to_200_is_served(service_client, many_jobs):
    body = ok(list_jobs(service_client, {"limit": "200"}))

    assert len(body["jobs"]) == 200
    assert body["total"] == 260


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("limit", "0"),
        ("limit", "201"),
        ("limit", "-5"),
        ("limit", "abc"),
        ("limit", "1.5"),
        ("offset", "-1"),
        ("offset", "abc"),
    ],
)
def test_limit_or_offset_out_of_range_is_rejected_with_a_422(service_client, db, param, value):
    details = assert_rejected(list_jobs(service_client, {param: value}), param, status_code=422)

    assert repr(value) in " ".join(details[param])


def test_offset_beyond_the_end_returns_no_results_and_the_real_count(service_client, pipeline):
    make_jobs(pipeline, 3)

    body = ok(list_jobs(service_client, {"offset": "10"}))

    assert body["jobs"] == []
    assert body["total"] == 3
    assert body["next"] is None


@pytest.fixture
def five_jobs_newest_first(pipeline):
    now = timezone.now()
    jobs = make_jobs(pipeline, 5)
    for minutes, job in enumerate(jobs):
        set_created_at(job, now - timedelta(minutes=minutes))
    return jobs


def test_next_and_previous_links_walk_the_whole_list(service_client, five_jobs_newest_first):
    first = ok(list_jobs(service_client, {"limit": "2"}))
    second = ok(service_client.get(first["next"]))
    third = ok(service_client.get(second["next"]))

    assert first["previous"] is None
    assert query_of(first["next"])["limit"] == ["2"]
    assert query_of(first["next"])["offset"] == ["2"]
    assert query_of(second["next"])["offset"] == ["4"]
    assert third["next"] is None
    assert result_ids(first) + result_ids(second) + result_ids(third) == as_ids(five_jobs_newest_first)
    back = ok(service_client.get(third["previous"]))
    assert result_ids(back) == result_ids(second)
    assert result_ids(ok(service_client.get(second["previous"]))) == result_ids(first)


def test_links_keep_the_filters(service_client, pipeline):
    make_jobs(pipeline, 3, status=JobStatus.FAILED)
    make_jobs(pipeline, 3, status=JobStatus.COMPLETED)

    first = ok(list_jobs(service_client, {"status": "failed", "limit": "2"}))
    second = ok(service_client.get(first["next"]))

    assert first["total"] == 3
    assert query_of(first["next"])["status"] == ["failed"]
    assert [row["status"] for row in second["jobs"]] == ["failed"]
    assert second["next"] is None


# -- ordering ---------------------------------------------------------------------------


def test_default_order_is_newest_first(service_client, pipeline):
    now = timezone.now()
    jobs = make_jobs(pipeline, 4)
    for minutes, job in zip((3, 0, 2, 1), jobs, strict=True):
        set_created_at(job, now - timedelta(minutes=minutes))

    body = ok(list_jobs(service_client))

    assert result_ids(body) == as_ids([jobs[1], jobs[3], jobs[2], jobs[0]])


def test_default_order_breaks_created_at_ties_by_id_descending(service_client, pipeline):
    jobs = make_jobs(pipeline, 6)
    Job.objects.filter(pk__in=[j.pk for j in jobs]).update(created_at=timezone.now())

    body = ok(list_jobs(service_client))

    assert result_ids(body) == [str(pk) for pk in sorted((j.pk for j in jobs), reverse=True)]


@pytest.mark.parametrize(
    "ordering", ["priority", "-priority", "duration_ms", "-duration_ms", "created_at", "-created_at"]
)
def test_each_ordering_sorts_by_its_field(service_client, pipeline, ordering):
    now = timezone.now()
    values = {
        "priority": [3, 0, 10, 7, 5],
        "duration_ms": [1200, 5, 90_000, 300, 42],
        "created_at": [now - timedelta(minutes=m) for m in (4, 9, 1, 7, 2)],
    }
    field = ordering.lstrip("-")
    jobs = make_jobs(pipeline, 5)
    for index, job in enumerate(jobs):
        Job.objects.filter(pk=job.pk).update(**{name: column[index] for name, column in values.items()})
    expected = [job for _, job in sorted(zip(values[field], jobs, strict=True), key=lambda pair: pair[0])]
    if ordering.startswith("-"):
        expected.reverse()

    body = ok(list_jobs(service_client, {"ordering": ordering}))

    assert result_ids(body) == as_ids(expected)


@pytest.mark.parametrize("ordering", ["bogus", "id", "-username", "priority,created_at"])
def test_unknown_ordering_is_rejected(service_client, db, ordering):
    assert_rejected(list_jobs(service_client, {"ordering": ordering}), "ordering")


# -- shape ------------------------------------------------------------------------------


def test_results_carry_exactly_the_job_summary(submitter_client, pipeline, user):
    job = JobFactory(
        pipeline=pipeline,
        user_id=user.pk,
        status=JobStatus.FAILED,
        priority=4,
        username="alice",
        action="resize",
        attempts=2,
        duration_ms=1500,
        error_message="stage resize failed",
        input_data={"secret_input": "do-not-list"},
    )

    response = list_jobs(submitter_client)
    body = ok(response)

    assert set(body) == PAGE_FIELDS
    [row] = body["jobs"]
    assert set(row) == SUMMARY_FIELDS
    assert "do-not-list" not in response.content.decode()
    assert row["job_id"] == str(job.pk)
    assert row["workflow_name"] == "resize"
    assert row["user_id"] == str(user.pk)
    assert (row["status"], row["priority"], row["attempts"], row["duration_ms"]) == ("failed", 4, 2, 1500)
    assert (row["username"], row["action"], row["error_message"]) == ("alice", "resize", "stage resize failed")


# -- count ------------------------------------------------------------------------------


def test_count_is_exact_for_a_small_list(service_client, pipeline):
    make_jobs(pipeline, 3, status=JobStatus.QUEUED)
    make_jobs(pipeline, 2, status=JobStatus.FAILED)

    everything = ok(list_jobs(service_client))
    failed = ok(list_jobs(service_client, {"status": "failed", "limit": "1"}))

    assert (everything["total"], everything["total_estimated"]) == (5, False)
    assert (failed["total"], failed["total_estimated"]) == (2, False)


def test_count_past_the_exact_maximum_is_estimated_on_postgresql_only(service_client, pipeline, settings):
    settings.API_COUNT_EXACT_MAX = 5
    make_jobs(pipeline, 8)

    body = ok(list_jobs(service_client))

    assert len(body["jobs"]) == 8
    if connection.vendor == "postgresql":
        assert body["total_estimated"] is True
        assert body["total"] >= 6
    else:
        assert body["total_estimated"] is False
        assert body["total"] == 8


def test_count_of_a_filtered_list_under_the_maximum_stays_exact(service_client, pipeline, settings):
    settings.API_COUNT_EXACT_MAX = 5
    make_jobs(pipeline, 6, status=JobStatus.QUEUED)
    make_jobs(pipeline, 2, status=JobStatus.FAILED)

    body = ok(list_jobs(service_client, {"status": "failed"}))

    assert (body["total"], body["total_estimated"]) == (2, False)


# -- the browsable API ------------------------------------------------------------------


def test_the_browsable_api_shows_the_list_and_its_filters(user, pipeline):
    client = APIClient()
    client.force_login(user)
    job = JobFactory(pipeline=pipeline, user_id=user.pk)

    response = client.get(JOBS_URL, HTTP_ACCEPT="text/html")

    assert response.status_code == 200
    html = response.content.decode()
    assert "filtersModal" in html  # the filter form: the paginator finds the page's jobs
    assert "&quot;job_id&quot;: &quot;" + str(job.pk) in html
