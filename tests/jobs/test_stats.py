"""Job statistics over a window (`jobs.stats`) and broker queue depths (`jobsite.broker.depth`)."""

import uuid
from datetime import datetime, timedelta

import dramatiq
import pytest
from django.db import OperationalError, connection
from django.utils import timezone
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.errors import BrokerConnectionError
from dramatiq.message import Message

from jobs.models import Job, JobStatus
from jobs.selectors import job_list
from jobs.stats import WINDOWS, job_stats
from jobsite.broker.backend import DatabaseBroker
from jobsite.broker.depth import broker_queue_depths
from tests.factories import JobFactory, PipelineFactory

ALL_ZERO = {status.value: 0 for status in JobStatus}
EMPTY_QUEUE = {"ready": 0, "delayed": 0, "in_flight": 0, "dead": 0}


def make_jobs(pipeline, status, count=1, **fields):
    return [JobFactory(pipeline=pipeline, status=status, **fields) for _ in range(count)]


def created(job, moment):
    Job.objects.filter(pk=job.pk).update(created_at=moment)


# --- job_stats: counts and rates ----------------------------------------------------


@pytest.mark.django_db
def test_counts_list_every_status_and_per_pipeline_only_the_nonzero_ones():
    alpha, beta = PipelineFactory(name="alpha"), PipelineFactory(name="beta")
    make_jobs(alpha, JobStatus.COMPLETED, 3)
    make_jobs(alpha, JobStatus.FAILED, 1)
    make_jobs(alpha, JobStatus.QUEUED, 2)
    make_jobs(beta, JobStatus.CANCELLED, 1)
    make_jobs(beta, JobStatus.PROCESSING, 4)

    stats = job_stats(jobs=Job.objects.all(), window="24h")

    assert stats["window"] == "24h"
    assert stats["total"] == 11
    assert stats["counts"] == {**ALL_ZERO, "completed": 3, "failed": 1, "queued": 2, "cancelled": 1, "processing": 4}
    assert list(stats["counts"]) == [status.value for status in JobStatus]
    assert [p["pipeline"] for p in stats["pipelines"]] == ["alpha", "beta"]
    alpha_stats, beta_stats = stats["pipelines"]
    assert alpha_stats["total"] == 6
    assert alpha_stats["counts"] == {"queued": 2, "completed": 3, "failed": 1}
    assert beta_stats["total"] == 5
    assert beta_stats["counts"] == {"processing": 4, "cancelled": 1}


@pytest.mark.django_db
def test_pipelines_are_sorted_by_name_whatever_their_creation_order():
    for name in ["zeta", "alpha", "mid"]:
        make_jobs(PipelineFactory(name=name), JobStatus.QUEUED)

    stats = job_stats(jobs=Job.objects.all(), window="1h")

    assert [p["pipeline"] for p in stats["pipelines"]] == ["alpha", "mid", "zeta"]


@pytest.mark.django_db
def test_success_rate_is_completed_over_completed_and_failed_rounded_to_four_places():
    alpha, beta = PipelineFactory(name="alpha"), PipelineFactory(name="beta")
    make_jobs(alpha, JobStatus.COMPLETED, 2)
    make_jobs(alpha, JobStatus.FAILED, 1)
    make_jobs(alpha, JobStatus.CANCELLED, 5)  # neither a success nor a failure
    make_jobs(beta, JobStatus.COMPLETED, 1)
    make_jobs(beta, JobStatus.FAILED, 3)

    stats = job_stats(jobs=Job.objects.all(), window="24h")

    assert stats["success_rate"] == 0.4286  # 3 of 7
    assert stats["pipelines"][0]["success_rate"] == 0.6667  # 2 of 3
    assert stats["pipelines"][1]["success_rate"] == 0.25


@pytest.mark.django_db
def test_success_rate_is_null_without_completed_or_failed_jobs():
    pipeline = PipelineFactory(name="alpha")
    make_jobs(pipeline, JobStatus.QUEUED, 2)
    make_jobs(pipeline, JobStatus.CANCELLED, 1)

    stats = job_stats(jobs=Job.objects.all(), window="24h")

    assert stats["success_rate"] is None
    assert stats["pipelines"][0]["success_rate"] is None


@pytest.mark.django_db
def test_an_empty_window_has_zero_counts_and_null_rates():
    stats = job_stats(jobs=Job.objects.all(), window="7d")

    assert stats["total"] == 0
    assert stats["counts"] == ALL_ZERO
    assert stats["success_rate"] is None
    assert stats["processing_time_ms"] == {"avg": None, "p95": None}
    assert stats["pipelines"] == []


# --- job_stats: processing time ---------------------------------------------------


@pytest.mark.django_db
def test_processing_time_is_the_mean_and_nearest_rank_p95_of_completed_durations():
    alpha, beta = PipelineFactory(name="alpha"), PipelineFactory(name="beta")
    for ms in range(1, 101):
        JobFactory(pipeline=alpha, status=JobStatus.COMPLETED, duration_ms=ms)
    for ms in [3000, 1000, 2000]:
        JobFactory(pipeline=beta, status=JobStatus.COMPLETED, duration_ms=ms)
    # Neither a failed job's duration nor a completed job without one counts.
    JobFactory(pipeline=alpha, status=JobStatus.FAILED, duration_ms=999_999)
    JobFactory(pipeline=alpha, status=JobStatus.COMPLETED, duration_ms=None)

    stats = job_stats(jobs=Job.objects.all(), window="24h")

    alpha_stats, beta_stats = stats["pipelines"]
    assert alpha_stats["processing_time_ms"] == {"avg": 50.5, "p95": 95}
    assert beta_stats["processing_time_ms"] == {"avg": 2000.0, "p95": 3000}
    # 103 durations: rank ceil(0.95 * 103) = 98 of 1..100, 1000, 2000, 3000.
    assert stats["processing_time_ms"] == {"avg": round((5050 + 6000) / 103, 1), "p95": 98}


@pytest.mark.django_db
@pytest.mark.parametrize(("count", "p95"), [(1, 1), (2, 2), (19, 19), (20, 19), (21, 20), (40, 38)])
def test_p95_is_the_duration_at_rank_ceil_of_95_percent_of_the_count(count, p95):
    pipeline = PipelineFactory(name="alpha")
    for ms in reversed(range(1, count + 1)):
        JobFactory(pipeline=pipeline, status=JobStatus.COMPLETED, duration_ms=ms)

    stats = job_stats(jobs=Job.objects.all(), window="24h")

    assert stats["processing_time_ms"]["p95"] == p95
    assert stats["pipelines"][0]["processing_time_ms"]["p95"] == p95


@pytest.mark.django_db
def test_processing_time_is_null_for_a_pipeline_without_timed_completed_jobs():
    alpha, beta = PipelineFactory(name="alpha"), PipelineFactory(name="beta")
    JobFactory(pipeline=alpha, status=JobStatus.COMPLETED, duration_ms=40)
    JobFactory(pipeline=beta, status=JobStatus.FAILED, duration_ms=70)

    stats = job_stats(jobs=Job.objects.all(), window="24h")

    assert stats["processing_time_ms"] == {"avg": 40.0, "p95": 40}
    assert stats["pipelines"][1]["processing_time_ms"] == {"avg": None, "p95": None}


# --- job_stats: window and scope ---------------------------------------------------


@pytest.mark.django_db
def test_a_job_created_25_hours_ago_is_outside_24h_but_inside_7d():
    pipeline = PipelineFactory(name="alpha")
    now = timezone.now()
    recent, old = make_jobs(pipeline, JobStatus.COMPLETED, 2, duration_ms=10)
    created(recent, now - timedelta(minutes=30))
    created(old, now - timedelta(hours=25))
    Job.objects.filter(pk=old.pk).update(duration_ms=500)

    day = job_stats(jobs=Job.objects.all(), window="24h", now=now)
    week = job_stats(jobs=Job.objects.all(), window="7d", now=now)

    assert day["total"] == 1
    assert day["processing_time_ms"] == {"avg": 10.0, "p95": 10}
    assert week["total"] == 2
    assert week["counts"]["completed"] == 2
    assert week["processing_time_ms"] == {"avg": 255.0, "p95": 500}


@pytest.mark.django_db
@pytest.mark.parametrize("window", list(WINDOWS))
def test_the_window_includes_its_start_and_end_and_nothing_outside(window):
    pipeline = PipelineFactory(name="alpha")
    now = timezone.now()
    span = WINDOWS[window]
    at_start, at_end, just_before, after = make_jobs(pipeline, JobStatus.QUEUED, 4)
    created(at_start, now - span)
    created(at_end, now)
    created(just_before, now - span - timedelta(milliseconds=1))
    created(after, now + timedelta(milliseconds=1))

    stats = job_stats(jobs=Job.objects.all(), window=window, now=now)

    assert stats["total"] == 2
    assert stats["since"] == (now - span).isoformat().replace("+00:00", "Z")
    assert stats["until"] == now.isoformat().replace("+00:00", "Z")


@pytest.mark.django_db
def test_since_and_until_default_to_now_in_utc():
    before = timezone.now()
    stats = job_stats(jobs=Job.objects.all(), window="1h")
    after = timezone.now()

    until = datetime.fromisoformat(stats["until"])
    since = datetime.fromisoformat(stats["since"])
    assert stats["until"].endswith("Z")
    assert before <= until <= after
    assert until - since == timedelta(hours=1)


@pytest.mark.django_db
def test_unknown_window_raises_value_error_naming_the_valid_windows():
    with pytest.raises(ValueError, match="'2d'") as excinfo:
        job_stats(jobs=Job.objects.all(), window="2d")

    for window in ["1h", "24h", "7d", "30d"]:
        assert window in str(excinfo.value)


@pytest.mark.django_db
def test_only_the_jobs_of_the_given_queryset_count(user, other_user):
    pipeline = PipelineFactory(name="alpha")
    make_jobs(pipeline, JobStatus.COMPLETED, 2, user_id=user.pk, duration_ms=10)
    make_jobs(pipeline, JobStatus.FAILED, 3, user_id=other_user.pk, duration_ms=90)

    # The selector's queryset is ordered and joined, as the API hands it over.
    stats = job_stats(jobs=job_list(user=user), window="24h")

    assert stats["total"] == 2
    assert stats["counts"] == {**ALL_ZERO, "completed": 2}
    assert stats["success_rate"] == 1.0
    assert stats["processing_time_ms"] == {"avg": 10.0, "p95": 10}


@pytest.mark.django_db
@pytest.mark.parametrize(("pipelines", "jobs_each"), [(1, 1), (2, 10), (6, 15)])
def test_query_count_does_not_grow_with_jobs_or_pipelines(pipelines, jobs_each, django_assert_num_queries):
    for n in range(pipelines):
        pipeline = PipelineFactory(name=f"p{n}")
        for i in range(jobs_each):
            JobFactory(pipeline=pipeline, status=JobStatus.COMPLETED, duration_ms=i + 1)
        make_jobs(pipeline, JobStatus.FAILED, 2)

    with django_assert_num_queries(3):
        stats = job_stats(jobs=Job.objects.all(), window="24h")

    assert stats["total"] == pipelines * (jobs_each + 2)
    assert len(stats["pipelines"]) == pipelines


@pytest.mark.django_db
def test_a_window_without_timed_jobs_takes_one_query(django_assert_max_num_queries):
    make_jobs(PipelineFactory(name="alpha"), JobStatus.QUEUED, 5)

    with django_assert_max_num_queries(1):
        stats = job_stats(jobs=Job.objects.all(), window="24h")

    assert stats["processing_time_ms"] == {"avg": None, "p95": None}


# --- broker_queue_depths ---------------------------------------------------------


def message(queue, n=0):
    return Message(queue_name=queue, actor_name="tests_depth_actor", args=(n,), kwargs={}, options={})


@pytest.mark.django_db(transaction=True)
def test_database_broker_depths_count_ready_delayed_in_flight_and_dead_messages():
    broker = DatabaseBroker(middleware=[], poll_interval_ms=20)
    other = DatabaseBroker(middleware=[], poll_interval_ms=20)
    try:
        broker.declare_queue("depth")
        broker.declare_queue("idle")
        other.declare_queue("elsewhere")
        for n in range(3):
            broker.enqueue(message("depth", n))
        broker.enqueue(message("depth", 9), delay=60_000)
        other.enqueue(message("elsewhere"))

        assert broker_queue_depths(broker) == {
            "depth": {"ready": 3, "delayed": 1, "in_flight": 0, "dead": 0},
            "idle": EMPTY_QUEUE,
        }

        consumer = broker.consume("depth", prefetch=1, timeout=500)
        first = next(consumer)
        assert first is not None
        assert broker_queue_depths(broker)["depth"] == {"ready": 2, "delayed": 1, "in_flight": 1, "dead": 0}

        consumer.nack(first)
        assert broker_queue_depths(broker)["depth"] == {"ready": 2, "delayed": 1, "in_flight": 0, "dead": 1}

        second = next(consumer)
        consumer.ack(second)
        consumer.close()  # acks are deleted in batches, at the consumer's next look or when it closes
        assert broker_queue_depths(broker)["depth"] == {"ready": 1, "delayed": 1, "in_flight": 0, "dead": 1}
    finally:
        broker.close()
        other.close()


@pytest.mark.django_db(transaction=True)
def test_database_broker_depths_take_one_query_whatever_the_queue_count(django_assert_num_queries):
    broker = DatabaseBroker(middleware=[])
    for n in range(5):
        broker.declare_queue(f"q{n}")
        broker.enqueue(message(f"q{n}"))

    with django_assert_num_queries(1):
        depths = broker_queue_depths(broker)

    assert depths == {f"q{n}": {**EMPTY_QUEUE, "ready": 1} for n in range(5)}


@pytest.mark.django_db
def test_database_broker_errors_become_broker_connection_errors():
    broker = DatabaseBroker(middleware=[])
    broker.declare_queue("depth")

    def database_down(execute, sql, params, many, context):
        raise OperationalError("could not connect to server")

    with connection.execute_wrapper(database_down), pytest.raises(BrokerConnectionError, match="could not connect"):
        broker_queue_depths(broker)


@pytest.fixture
def redis_broker_factory(redis_url):
    """Makes Redis brokers sharing a fresh namespace, as the processes of one deployment do."""
    namespace = f"jobsite-depth-{uuid.uuid4().hex[:8]}"
    brokers = []

    def make(*queues):
        broker = RedisBroker(url=redis_url, namespace=namespace, middleware=[])
        for queue in queues:
            broker.declare_queue(queue)
        brokers.append(broker)
        return broker

    yield make
    for broker in brokers:
        broker.close()


def test_redis_broker_depths_count_ready_delayed_in_flight_and_dead_messages(redis_broker_factory):
    broker = redis_broker_factory("depth", "idle")
    for n in range(3):
        broker.enqueue(message("depth", n))
    broker.enqueue(message("depth", 9), delay=60_000)

    assert broker_queue_depths(broker) == {
        "depth": {"ready": 3, "delayed": 1, "in_flight": 0, "dead": 0},
        "idle": EMPTY_QUEUE,
    }

    consumer = broker.consume("depth", prefetch=1, timeout=100)
    first = next(consumer)
    assert first is not None
    assert broker_queue_depths(broker)["depth"] == {"ready": 2, "delayed": 1, "in_flight": 1, "dead": 0}

    consumer.nack(first)
    assert broker_queue_depths(broker)["depth"] == {"ready": 2, "delayed": 1, "in_flight": 0, "dead": 1}


def test_redis_broker_depths_add_up_in_flight_messages_of_every_worker(redis_broker_factory):
    web, worker_a, worker_b = (redis_broker_factory("depth") for _ in range(3))
    for n in range(5):
        web.enqueue(message("depth", n))

    assert next(worker_a.consume("depth", prefetch=2, timeout=100)) is not None
    assert next(worker_b.consume("depth", prefetch=1, timeout=100)) is not None

    assert broker_queue_depths(web)["depth"] == {"ready": 2, "delayed": 0, "in_flight": 3, "dead": 0}


def test_redis_delayed_messages_held_by_a_worker_still_count_as_delayed(redis_broker_factory):
    web, worker = redis_broker_factory("depth"), redis_broker_factory("depth")
    web.enqueue(message("depth"), delay=60_000)

    # A Dramatiq worker prefetches delayed messages and keeps them until their eta.
    held = next(worker.consume("depth.DQ", prefetch=10, timeout=100))

    assert held is not None
    assert broker_queue_depths(web) == {"depth": {"ready": 0, "delayed": 1, "in_flight": 0, "dead": 0}}


def test_redis_depths_ignore_other_namespaces(redis_url, redis_broker_factory):
    stranger = RedisBroker(url=redis_url, namespace=f"jobsite-other-{uuid.uuid4().hex[:8]}", middleware=[])
    try:
        stranger.declare_queue("depth")
        stranger.enqueue(message("depth"))
        assert next(stranger.consume("depth", prefetch=1, timeout=100)) is not None
        stranger.enqueue(message("depth"))

        assert broker_queue_depths(redis_broker_factory("depth")) == {"depth": EMPTY_QUEUE}
    finally:
        stranger.close()


def test_unreachable_redis_raises_broker_connection_error():
    broker = RedisBroker(url="redis://127.0.0.1:1/0", middleware=[], socket_connect_timeout=1)
    broker.declare_queue("depth")

    with pytest.raises(BrokerConnectionError, match="Redis"):
        broker_queue_depths(broker)


def test_stub_broker_depths_count_ready_delayed_in_flight_and_dead_messages():
    broker = StubBroker(middleware=[])
    broker.declare_queue("depth")
    broker.declare_queue("idle")
    for n in range(3):
        broker.enqueue(message("depth", n))
    broker.enqueue(message("depth", 9), delay=60_000)

    assert broker_queue_depths(broker) == {
        "depth": {"ready": 3, "delayed": 1, "in_flight": 0, "dead": 0},
        "idle": EMPTY_QUEUE,
    }

    consumer = broker.consume("depth", prefetch=2, timeout=100)
    first, second = next(consumer), next(consumer)
    assert broker_queue_depths(broker)["depth"] == {"ready": 1, "delayed": 1, "in_flight": 2, "dead": 0}

    consumer.nack(first)
    consumer.ack(second)
    assert broker_queue_depths(broker)["depth"] == {"ready": 1, "delayed": 1, "in_flight": 0, "dead": 1}

    # A worker holding a delayed message until its eta has not delivered it yet.
    assert next(broker.consume("depth.DQ", prefetch=1, timeout=100)) is not None
    assert broker_queue_depths(broker)["depth"]["delayed"] == 1


def test_depths_default_to_the_current_broker_and_name_only_canonical_queues(stub_broker):
    assert dramatiq.get_broker() is stub_broker
    stub_broker.declare_queue("tests_depth_default")
    stub_broker.enqueue(message("tests_depth_default"))
    stub_broker.enqueue(message("tests_depth_default"), delay=60_000)

    depths = broker_queue_depths()

    assert depths["tests_depth_default"] == {"ready": 1, "delayed": 1, "in_flight": 0, "dead": 0}
    assert set(depths) == {name for name in stub_broker.get_declared_queues() if not name.endswith(".DQ")}
    assert not any(name.endswith((".DQ", ".XQ")) for name in depths)


class CountingRabbitmqBroker(RabbitmqBroker):
    """A RabbitMQ broker whose server answers message counts without a connection."""

    counts = {"depth": (4, 2, 1), "idle": (0, 0, 0)}

    def get_queue_message_counts(self, queue_name):
        return self.counts[queue_name]


def test_rabbitmq_depths_map_queue_delay_and_dead_letter_counts_and_leave_in_flight_unknown():
    broker = CountingRabbitmqBroker(url="amqp://guest:guest@127.0.0.1:1/", middleware=[])
    broker.declare_queue("depth")
    broker.declare_queue("idle")

    assert broker_queue_depths(broker) == {
        "depth": {"ready": 4, "delayed": 2, "in_flight": None, "dead": 1},
        "idle": {"ready": 0, "delayed": 0, "in_flight": None, "dead": 0},
    }


def test_unreachable_rabbitmq_raises_broker_connection_error():
    broker = RabbitmqBroker(url="amqp://guest:guest@127.0.0.1:1/?connection_attempts=1", middleware=[])
    broker.declare_queue("depth")

    with pytest.raises(BrokerConnectionError):
        broker_queue_depths(broker)
