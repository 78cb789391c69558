"""Every error under /api/ is in the JSON error shape, with DEBUG on (`make run`) as with it off."""

import pytest
from django.http import HttpResponse
from django.test import Client
from django.urls import path
from django.views.decorators.http import require_POST
from rest_framework.test import APIClient

from jobsite.urls import urlpatterns as project_urlpatterns
from tests import credentials

SHAPE = {"error", "message", "details", "request_id"}


def _boom(request):
    raise RuntimeError("an error outside any DRF view")


@require_POST
def _post_only(request):
    return HttpResponse("ok")


# The project's routes plus two plain Django views under /api/ (used through `pytest.mark.urls`).
urlpatterns = [*project_urlpatterns, path("api/boom/", _boom), path("api/post-only/", _post_only)]


@pytest.fixture(params=[True, False], ids=["debug", "production"])
def debug(request, settings):
    settings.DEBUG = request.param
    return request.param


def _assert_error(response, status, code):
    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == SHAPE
    assert body["error"] == code
    assert body["request_id"] == response["X-Request-ID"]
    assert int(response.get("Content-Length", len(response.content))) == len(response.content)
    return body


@pytest.mark.parametrize("path_", ["/api/v1/nope/", "/api/nope", "/api/v1/jobs/x/y/z"])
def test_unknown_api_paths_are_404_in_the_error_shape(debug, db, path_):
    _assert_error(Client().get(path_), 404, "not_found")


@pytest.mark.parametrize(
    ("method", "path_"), [("post", "/api/docs/"), ("delete", "/api/redoc/"), ("post", "/api/schema/")]
)
def test_methods_the_docs_do_not_take_are_405_in_the_error_shape(debug, db, method, path_):
    response = getattr(Client(), method)(path_)
    body = _assert_error(response, 405, "method_not_allowed")
    assert method.upper() in body["message"]
    assert "GET" in response["Allow"]


@pytest.mark.urls("tests.test_api_errors")
def test_plain_django_views_under_api_answer_in_the_error_shape(debug, db):
    client = Client(raise_request_exception=False)
    body = _assert_error(client.get("/api/boom/"), 500, "internal_error")
    assert "outside any DRF view" not in str(body)
    _assert_error(client.get("/api/post-only/"), 405, "method_not_allowed")


def test_pages_outside_api_keep_djangos_pages(settings, db):
    settings.DEBUG = True
    response = Client().get("/no-such-page/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


def test_the_browsable_api_keeps_its_html_error_pages(db, user):
    client = APIClient()
    client.force_login(user)
    response = client.get("/api/v1/jobs/00000000-0000-0000-0000-000000000000/", HTTP_ACCEPT="text/html")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
    json_response = APIClient().get("/api/v1/jobs/00000000-0000-0000-0000-000000000000/", **credentials.jwt_for(user))
    _assert_error(json_response, 404, "not_found")
