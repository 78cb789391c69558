"""Shared by the seed contract tests: each calls jobsite as that seed's client would."""

import pytest
from rest_framework.test import APIClient

REQUEST_ID = "seed-client-0001"


@pytest.fixture
def client():
    """A client with no credentials: each test sends what the seed's client sent."""
    return APIClient()


def assert_request_id(response, request_id: str = REQUEST_ID) -> dict:
    """The body is JSON and carries the request id, which the header echoes; return the body."""
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = response.json()
    assert body["request_id"] == request_id
    assert response["X-Request-ID"] == request_id
    return body


def fastapi_items(body: dict) -> list[dict]:
    """FastAPI's validation `detail`: a list of `{loc, msg, type}`."""
    detail = body["detail"]
    assert isinstance(detail, list) and detail, body
    for item in detail:
        assert {"loc", "msg", "type"} <= set(item), item
        assert isinstance(item["loc"], list) and isinstance(item["msg"], str)
    return detail


def locs(body: dict) -> list[list]:
    return [item["loc"] for item in fastapi_items(body)]
