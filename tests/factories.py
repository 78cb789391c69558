"""factory_boy factories for the test suite."""

import factory
from django.contrib.auth import get_user_model

from jobs.models import Job, JobStatus
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
