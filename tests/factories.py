"""factory_boy factories for the test suite."""

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from jobs.models import Job, JobEvent, JobEventType, JobStatus, StageRun, StageRunStatus, WorkerProcess
from pipelines.models import Pipeline


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.django.Password("correct horse battery staple")


class PipelineFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Pipeline

    name = factory.Sequence(lambda n: f"pipeline-{n}")
    description = "A test pipeline."
    config = factory.LazyFunction(
        lambda: {"input_schema": {"type": "object"}, "stages": [{"name": "echo", "type": "echo", "params": {}}]}
    )


class JobFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Job

    pipeline = factory.SubFactory(PipelineFactory)
    pipeline_version = factory.SelfAttribute("pipeline.version")
    pipeline_config = factory.SelfAttribute("pipeline.config")
    status = JobStatus.QUEUED
    input_data = factory.LazyFunction(lambda: {"text": "hello"})


class JobEventFactory(factory.django.DjangoModelFactory):
    """A job event as the run path writes it (until every transition writes its own)."""

    class Meta:
        model = JobEvent

    job = factory.SubFactory(JobFactory)
    type = JobEventType.CREATED
    data = factory.LazyFunction(lambda: {"status": "pending"})
    created_at = factory.LazyFunction(timezone.now)


class StageRunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = StageRun

    job = factory.SubFactory(JobFactory)
    index = 0
    name = "echo"
    stage_type = "echo"
    status = StageRunStatus.COMPLETED
    attempt = 1
    job_attempt = 1
    started_at = factory.LazyFunction(timezone.now)


class WorkerProcessFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = WorkerProcess

    worker_id = factory.Sequence(lambda n: f"box-{n}:{1000 + n}:abc{n:03d}")
    hostname = factory.LazyAttribute(lambda w: w.worker_id.split(":")[0])
    pid = factory.LazyAttribute(lambda w: int(w.worker_id.split(":")[1]))
    queues = factory.LazyFunction(lambda: ["jobs", "maintenance"])
    threads = 4
    started_at = factory.LazyFunction(timezone.now)
    last_seen_at = factory.LazyFunction(timezone.now)
