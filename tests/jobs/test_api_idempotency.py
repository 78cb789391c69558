"""Idempotency keys: a repeat returns the first job, a reuse with another submission is 422, empty means absent."""

import pytest

from jobs.models import Job

JOBS_URL = "/api/v1/jobs/"


def _post(client, body, **headers):
    return client.post(JOBS_URL, body, format="json", **headers)


@pytest.fixture
def body():
    return {"pipeline": "sample_task", "input_data": {"n": 1}, "idempotency_key": "order-17"}


def test_the_same_key_with_the_same_submission_returns_the_first_job(service_client, demo_pipelines, body):
    first = _post(service_client, body)
    again = _post(service_client, body)

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["job_id"] == first.json()["job_id"]
    assert (first.json()["duplicate"], again.json()["duplicate"]) == (False, True)
    assert Job.objects.count() == 1


def test_the_same_key_with_a_different_submission_is_422_and_changes_nothing(service_client, demo_pipelines, body):
    first = _post(service_client, body)

    reused = _post(service_client, {**body, "input_data": {"n": 2}})

    assert reused.status_code == 422, reused.content
    error = reused.json()
    assert error["error"] == "idempotency_key_reused"
    assert error["details"] == {"idempotency_key": "order-17", "job_id": first.json()["job_id"]}
    assert Job.objects.count() == 1
    assert Job.objects.get().input_data == {"n": 1}
    # A priority or a username differing is another submission too.
    assert _post(service_client, {**body, "priority": 3}).status_code == 422


def test_the_header_and_the_field_are_the_same_key(service_client, demo_pipelines, body):
    key = body.pop("idempotency_key")
    first = _post(service_client, body, HTTP_IDEMPOTENCY_KEY=key)
    again = _post(service_client, {**body, "idempotency_key": key})

    assert (first.status_code, again.status_code) == (201, 200)
    assert _post(service_client, {**body, "input_data": {"x": 0}}, HTTP_IDEMPOTENCY_KEY=key).status_code == 422


def test_an_empty_idempotency_key_header_means_no_key(service_client, demo_pipelines):
    body = {"pipeline": "sample_task", "input_data": {"n": 1}}

    first = _post(service_client, body, HTTP_IDEMPOTENCY_KEY="")
    second = _post(service_client, body, HTTP_IDEMPOTENCY_KEY="  ")

    assert (first.status_code, second.status_code) == (201, 201)
    assert first.json()["job_id"] != second.json()["job_id"]
    assert set(Job.objects.values_list("idempotency_key", flat=True)) == {None}


def test_an_idempotency_key_header_longer_than_a_key_may_be_is_400(service_client, demo_pipelines):
    response = _post(service_client, {"pipeline": "sample_task", "input_data": {}}, HTTP_IDEMPOTENCY_KEY="k" * 256)

    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()["details"]
    assert not Job.objects.exists()


def test_in_a_batch_only_the_item_reusing_a_key_for_another_submission_fails(service_client, demo_pipelines, body):
    first = _post(service_client, body).json()
    items = [
        {**body, "input_data": {"n": 99}},  # reuse: 422
        body,  # repeat: 200, the first job
        {"pipeline": "sample_task", "input_data": {"fresh": True}},
    ]

    response = service_client.post(f"{JOBS_URL}batch/", {"jobs": items}, format="json")

    results = response.json()["results"]
    assert [item["status"] for item in results] == [422, 200, 201]
    assert results[0]["errors"]["job_id"] == first["job_id"]
    assert results[1]["job"]["job_id"] == first["job_id"]
    assert Job.objects.count() == 2
