"""Who listens to a job's event: one rule, asked in Python (listens), in SQL (notify_sql) and by the dispatcher."""

import itertools

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.utils import timezone

from jobs.events import job_events_rows, listens, notify_sql
from jobs.models import JobEvent, JobEventType, JobStatus
from jobs.run import job_run
from tests.conftest import grant_role
from tests.credentials import webhook_subscription_for
from tests.factories import JobFactory, PipelineFactory, UserFactory
from webhooks.models import WebhookSubscription
from webhooks.recipients import subscription_receives
from webhooks.secrets import secret_encrypt, secret_generate

from .conftest import echo_job

URL = "http://127.0.0.1:9/hook"
EVENTS = list(JobEventType)


def _postgresql_only():
    if connection.vendor != "postgresql":
        pytest.skip("notify_sql is the PostgreSQL run path's")


def _notify_sql_says(event_type, job) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {notify_sql(event_type, 'j')} FROM jobs_job j WHERE j.id = %s",  # noqa: S608
            [job.pk],
        )
        return cursor.fetchone()[0]


# Each world: the subscriptions that exist (owner, events, all_jobs, is_active).
WORLDS = {
    "nobody": [],
    "owner wants completed": [("owner", ["job.completed"], False, True)],
    "owner wants started and created": [("owner", ["job.started", "job.created"], False, True)],
    "owner's subscription disabled": [("owner", EVENTS, False, False)],
    "someone else wants everything of theirs": [("other", EVENTS, False, True)],
    "an operator wants every job's failures": [("operator", ["job.failed"], True, True)],
    "the service wants every job's retries": [(None, ["job.retrying"], True, True)],
    "an every-job subscription disabled": [("operator", EVENTS, True, False)],
}


@pytest.fixture
def people(db):
    return {
        "owner": UserFactory(username="owner"),
        "other": UserFactory(username="other"),
        "operator": grant_role(UserFactory(), "operator"),
    }


def _build(world, people):
    for owner, events, all_jobs, active in WORLDS[world]:
        webhook_subscription_for(
            people[owner] if owner else None, URL, [str(e) for e in events], all_jobs=all_jobs, is_active=active
        )


CASES = list(itertools.product(WORLDS, [True, False], [True, False]))


@pytest.mark.parametrize(("world", "has_callback", "has_owner"), CASES)
def test_listens_and_notify_sql_and_the_dispatcher_agree(world, has_callback, has_owner, people):
    _build(world, people)
    job = echo_job(user=people["owner"] if has_owner else None, webhook_url=URL if has_callback else "")
    subscriptions = list(WebhookSubscription.objects.all())

    for event_type in EVENTS:
        expected = listens(event_type, webhook_url=job.webhook_url, user_id=job.user_id)
        dispatcher = any(subscription_receives(s, event_type, job.user_id) for s in subscriptions) or (
            has_callback and event_type in {"job.completed", "job.failed", "job.cancelled"}
        )
        assert expected == dispatcher, event_type
        if connection.vendor == "postgresql":
            assert _notify_sql_says(event_type, job) == expected, event_type


def test_the_rule_says_what_the_readme_says(people):
    owner, other, operator = people["owner"], people["other"], people["operator"]
    webhook_subscription_for(owner, URL, ["job.completed"])
    webhook_subscription_for(operator, URL, ["job.failed"], all_jobs=True)

    assert listens("job.completed", webhook_url="", user_id=owner.pk)
    assert not listens("job.completed", webhook_url="", user_id=other.pk)
    assert not listens("job.started", webhook_url="", user_id=owner.pk)
    assert listens("job.failed", webhook_url="", user_id=other.pk)
    assert listens("job.failed", webhook_url="", user_id=None)
    assert listens("job.cancelled", webhook_url=URL, user_id=None)
    assert not listens("job.started", webhook_url=URL, user_id=None)


def test_a_batch_of_events_asks_once_and_marks_each_job(people, django_assert_num_queries):
    owner, other = people["owner"], people["other"]
    webhook_subscription_for(owner, URL, ["job.created"])
    pipeline = PipelineFactory()
    jobs = [JobFactory.build(pipeline=pipeline, user_id=u.pk) for u in (owner, other)]
    jobs.append(JobFactory.build(pipeline=pipeline, user_id=None, webhook_url=URL))

    with django_assert_num_queries(1):
        rows = job_events_rows(jobs, JobEventType.CREATED, timezone.now())

    assert [row.notify for row in rows] == [True, False, False]


@pytest.mark.django_db(transaction=True)
def test_the_run_path_marks_the_events_someone_listens_to(people):
    _postgresql_only()
    owner = people["owner"]
    webhook_subscription_for(owner, URL, ["job.started"])
    pipeline = PipelineFactory(config={"stages": [{"name": "echo", "type": "echo"}]})
    job = JobFactory(pipeline=pipeline, user_id=owner.pk, status=JobStatus.QUEUED)

    job_run(job_id=str(job.pk))

    notify = dict(JobEvent.objects.filter(job=job).values_list("type", "notify"))
    assert notify == {"job.started": True, "job.completed": False}


def test_the_subscription_check_is_answered_from_indexes_among_many_subscriptions(people):
    _postgresql_only()
    owner = people["owner"]
    users = get_user_model().objects.bulk_create(UserFactory.build(username=f"u{n}") for n in range(300))
    secret = secret_encrypt(secret_generate())
    WebhookSubscription.objects.bulk_create(
        WebhookSubscription(user=user, url=URL, events=["job.completed"], secret=secret, is_active=n % 2 == 0)
        for n, user in enumerate(users * 10)
    )
    webhook_subscription_for(owner, URL, ["job.completed"])
    job = echo_job(user=owner)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE webhook_subscriptions")
        cursor.execute(
            f"EXPLAIN SELECT {notify_sql('job.completed', 'j')} FROM jobs_job j WHERE j.id = %s",  # noqa: S608
            [job.pk],
        )
        plan = "\n".join(row[0] for row in cursor.fetchall())

    assert "Seq Scan" not in plan, plan
    assert plan.count("webhook_sub_active_") == 2, plan


@pytest.mark.parametrize("change", ["claim", "cancel"])
def test_a_change_that_rolls_back_leaves_no_event_behind(people, change, stub_broker):
    """The outbox row is written with the change: when the transaction rolls back, neither exists."""
    from django.db import transaction

    from jobs.run import job_claim
    from jobs.services import job_cancel

    owner = people["owner"]
    webhook_subscription_for(owner, URL, ["job.started", "job.cancelled"])
    job = echo_job(user=owner)
    before = set(JobEvent.objects.filter(job=job).values_list("pk", flat=True))

    class Abandoned(Exception):
        pass

    with pytest.raises(Abandoned), transaction.atomic():
        if change == "claim":
            assert job_claim(job_id=str(job.pk), worker="w:1") is not None
        else:
            assert job_cancel(job_id=job.pk).status == JobStatus.CANCELLED
        assert set(JobEvent.objects.filter(job=job).values_list("pk", flat=True)) != before  # written with it
        raise Abandoned

    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED
    assert set(JobEvent.objects.filter(job=job).values_list("pk", flat=True)) == before
