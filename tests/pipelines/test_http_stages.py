"""The http_request and transform stage types, run through the registry against a real server on 127.0.0.1."""

import socket
import time

import pytest
import urllib3.util.connection
from werkzeug import Response

from jobsite.outbound import UnsafeURL
from pipelines.registry import StageContext, get_stage_type, params_errors, stage_types
from pipelines.stages import HTTPRequestFailed, PathNotFound


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch):
    """Fail any connection to somewhere other than loopback, so a broken guard cannot reach a real network."""
    real_create_connection = urllib3.util.connection.create_connection

    def create_connection(address, *args, **kwargs):
        resolved = {info[4][0] for info in socket.getaddrinfo(*address, type=socket.SOCK_STREAM)}
        assert resolved <= {"127.0.0.1", "::1"}, f"tests may only connect to loopback, not {resolved}"
        return real_create_connection(address, *args, **kwargs)

    monkeypatch.setattr(urllib3.util.connection, "create_connection", create_connection)


@pytest.fixture
def private_allowed(settings):
    settings.ALLOW_PRIVATE_NETWORK_URLS = True


@pytest.fixture
def base_url(httpserver):
    return f"http://127.0.0.1:{httpserver.port}"


def run_stage(name, params, *, input=None, previous=None, outputs=None):
    context = StageContext(
        job_id="job-1",
        input=input or {},
        previous=previous,
        outputs=outputs or {},
        params=params,
    )
    return get_stage_type(name).func(context)


# --- http_request: building the request ---------------------------------------------


def test_get_fills_url_and_header_templates_and_returns_the_json_body(private_allowed, httpserver, base_url):
    httpserver.expect_request(
        "/users/42/posts",
        method="GET",
        query_string="since=2024-01-01",
        headers={"Authorization": "Bearer tok-7", "X-Trace": "fetch:3"},
    ).respond_with_json({"posts": [{"id": 1}]}, headers={"X-Total": "1"})

    output = run_stage(
        "http_request",
        {
            "url": base_url + "/users/{input.user.id}/posts?since={previous.since}",
            "headers": {"Authorization": "Bearer {input.token}", "X-Trace": "fetch:{outputs.count.n}"},
        },
        input={"user": {"id": 42}, "token": "tok-7"},
        previous={"since": "2024-01-01"},
        outputs={"count": {"n": 3}},
    )

    assert output["status_code"] == 200
    assert output["body"] == {"posts": [{"id": 1}]}
    assert output["headers"]["X-Total"] == "1"
    assert output["headers"]["Content-Type"] == "application/json"
    assert len(httpserver.log) == 1


def test_post_fills_templates_in_every_string_leaf_of_the_body(private_allowed, httpserver, base_url):
    httpserver.expect_request(
        "/items",
        method="POST",
        headers={"Content-Type": "application/json"},
        json={
            "name": "Ada",
            "tags": ["fresh", 5, None],
            "meta": {"source": "fetch-99", "literal": "{not a placeholder}", "count": 2},
        },
    ).respond_with_json({"created": True}, status=201)

    output = run_stage(
        "http_request",
        {
            "url": base_url + "/items",
            "method": "POST",
            "body": {
                "name": "{input.name}",
                "tags": ["{previous.tag}", 5, None],
                "meta": {"source": "fetch-{outputs.fetch.body.id}", "literal": "{not a placeholder}", "count": 2},
            },
        },
        input={"name": "Ada"},
        previous={"tag": "fresh"},
        outputs={"fetch": {"body": {"id": 99}}},
    )

    assert output["status_code"] == 201
    assert output["body"] == {"created": True}


def test_body_from_sends_the_value_at_the_path_with_its_types_kept(private_allowed, httpserver, base_url):
    record = {"id": 7, "scores": [1.5, 2], "active": True, "note": None}
    httpserver.expect_request("/records", method="PUT", json=record).respond_with_data("", status=204)

    output = run_stage(
        "http_request",
        {"url": base_url + "/records", "method": "PUT", "body_from": "fetch.body.items.1"},
        outputs={"fetch": {"body": {"items": [{"id": 6}, record]}}},
    )

    assert output["status_code"] == 204
    assert output["body"] == ""


def test_a_content_type_header_given_in_params_is_kept(private_allowed, httpserver, base_url):
    httpserver.expect_request(
        "/events", method="PATCH", headers={"Content-Type": "application/merge-patch+json"}, json={"a": 1}
    ).respond_with_json({})

    run_stage(
        "http_request",
        {
            "url": base_url + "/events",
            "method": "PATCH",
            "headers": {"Content-Type": "application/merge-patch+json"},
            "body": {"a": 1},
        },
    )

    assert len(httpserver.log) == 1


def test_delete_sends_no_body_when_none_is_given(private_allowed, httpserver, base_url):
    httpserver.expect_request("/items/3", method="DELETE", data=b"").respond_with_json({"deleted": 3})

    output = run_stage("http_request", {"url": base_url + "/items/3", "method": "DELETE"})

    assert output["body"] == {"deleted": 3}
    request, _ = httpserver.log[0]
    assert "Content-Type" not in request.headers


def test_a_missing_template_path_fails_before_any_request_naming_the_path(private_allowed, httpserver, base_url):
    with pytest.raises(PathNotFound, match=r"'input\.user\.email'.*input\.user has no 'email'"):
        run_stage("http_request", {"url": base_url + "/u/{input.user.email}"}, input={"user": {"id": 1}})

    assert httpserver.log == []


# --- http_request: reading the response ---------------------------------------------


def test_a_text_response_body_is_returned_as_text(private_allowed, httpserver, base_url):
    httpserver.expect_request("/page").respond_with_data("<p>Hello</p>", content_type="text/html; charset=utf-8")

    output = run_stage("http_request", {"url": base_url + "/page"})

    assert output["body"] == "<p>Hello</p>"


def test_text_without_a_charset_is_read_as_utf8(private_allowed, httpserver, base_url):
    httpserver.expect_request("/plain").respond_with_response(
        Response("café €5".encode(), headers={"Content-Type": "text/plain"})
    )

    assert run_stage("http_request", {"url": base_url + "/plain"})["body"] == "café €5"


def test_text_in_a_declared_charset_is_decoded_with_it(private_allowed, httpserver, base_url):
    httpserver.expect_request("/latin").respond_with_response(
        Response("café".encode("latin-1"), headers={"Content-Type": "text/plain; charset=ISO-8859-1"})
    )

    assert run_stage("http_request", {"url": base_url + "/latin"})["body"] == "café"


def test_a_structured_json_content_type_is_parsed(private_allowed, httpserver, base_url):
    httpserver.expect_request("/doc").respond_with_data(
        '{"data": {"type": "post"}}', content_type="application/vnd.api+json"
    )

    assert run_stage("http_request", {"url": base_url + "/doc"})["body"] == {"data": {"type": "post"}}


def test_invalid_json_under_a_json_content_type_fails(private_allowed, httpserver, base_url):
    httpserver.expect_request("/broken").respond_with_data("{not json", content_type="application/json")

    with pytest.raises(HTTPRequestFailed, match="returned invalid JSON"):
        run_stage("http_request", {"url": base_url + "/broken"})


# --- http_request: failures -----------------------------------------------------------


@pytest.mark.parametrize(("status", "reason"), [(404, "NOT FOUND"), (500, "INTERNAL SERVER ERROR"), (302, "FOUND")])
def test_a_status_outside_2xx_fails_naming_the_url_without_its_query(
    private_allowed, httpserver, base_url, status, reason
):
    httpserver.expect_request("/thing").respond_with_data("nope", status=status, headers={"Location": "/else"})

    with pytest.raises(HTTPRequestFailed) as failure:
        run_stage("http_request", {"url": base_url + "/thing?api_key=s3cret#frag", "method": "POST"})

    assert str(failure.value) == f"POST {base_url}/thing returned HTTP {status} {reason}."
    assert "s3cret" not in str(failure.value)


def test_a_slow_server_fails_the_stage_after_timeout_s(private_allowed, httpserver, base_url):
    def slow(request):
        time.sleep(0.3)
        return Response("late")

    httpserver.expect_request("/slow").respond_with_handler(slow)
    started = time.monotonic()

    with pytest.raises(HTTPRequestFailed, match=rf"^GET {base_url}/slow timed out after 0\.1 s\.$"):
        run_stage("http_request", {"url": base_url + "/slow?token=s3cret", "timeout_s": 0.1})

    assert time.monotonic() - started < 0.3


def test_a_refused_connection_fails_the_stage_naming_the_url(private_allowed):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    with pytest.raises(HTTPRequestFailed, match=rf"^GET http://127\.0\.0\.1:{port}/x could not connect: .*refused"):
        run_stage("http_request", {"url": f"http://127.0.0.1:{port}/x?token=s3cret"})


def test_a_body_over_the_size_limit_fails_the_stage(private_allowed, httpserver, base_url):
    httpserver.expect_request("/huge").respond_with_data(b"x" * (10 * 1024 * 1024 + 1))

    with pytest.raises(ValueError, match="larger than the 10485760-byte limit"):
        run_stage("http_request", {"url": base_url + "/huge"})


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::ffff:127.0.0.1]"])
def test_loopback_urls_are_refused_unless_private_networks_are_allowed(settings, httpserver, host):
    settings.ALLOW_PRIVATE_NETWORK_URLS = False
    httpserver.expect_request("/").respond_with_json({})

    with pytest.raises(UnsafeURL, match="not a public address"):
        run_stage("http_request", {"url": f"http://{host}:{httpserver.port}/"})

    assert httpserver.log == []


def test_a_templated_url_is_checked_after_it_is_filled_in(settings, httpserver):
    settings.ALLOW_PRIVATE_NETWORK_URLS = False
    httpserver.expect_request("/").respond_with_json({})

    with pytest.raises(UnsafeURL, match="not a public address"):
        run_stage("http_request", {"url": "{input.target}"}, input={"target": f"http://127.0.0.1:{httpserver.port}/"})

    assert httpserver.log == []


# --- transform ------------------------------------------------------------------------


def test_transform_selects_from_input_previous_and_named_outputs():
    output = run_stage(
        "transform",
        {
            "select": {
                "customer": "input.customer.name",
                "status": "previous.status_code",
                "first_title": "fetch.body.items.0.title",
                "second_id": "outputs.fetch.body.items.1.id",
                "words": "stats.words",
                "whole": "stats",
            }
        },
        input={"customer": {"name": "Ada"}},
        previous={"status_code": 200},
        outputs={
            "fetch": {"body": {"items": [{"id": 1, "title": "First"}, {"id": 2, "title": "Second"}]}},
            "stats": {"words": 120},
        },
    )

    assert output == {
        "customer": "Ada",
        "status": 200,
        "first_title": "First",
        "second_id": 2,
        "words": 120,
        "whole": {"words": 120},
    }


def test_transform_prefers_a_key_named_like_a_number_in_an_object():
    output = run_stage("transform", {"select": {"v": "input.by_year.2024"}}, input={"by_year": {"2024": "x"}})

    assert output == {"v": "x"}


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("input.customer.email", r"'input\.customer\.email': input\.customer has no 'email'"),
        ("fetch.items.5", r"'fetch\.items\.5': fetch\.items has no '5'"),
        ("fetch.items.first", r"'fetch\.items\.first': fetch\.items has no 'first'"),
        ("fetch.items.-1", r"'fetch\.items\.-1': fetch\.items has no '-1'"),
        ("previous.status.code", r"'previous\.status\.code': previous\.status has no 'code'"),
        ("nosuchstage.x", r"'nosuchstage' is not input, previous, outputs or an earlier stage's name"),
    ],
)
def test_transform_names_a_missing_path(path, message):
    with pytest.raises(PathNotFound, match=message):
        run_stage(
            "transform",
            {"select": {"out": path}},
            input={"customer": {"name": "Ada"}},
            previous={"status": 200},
            outputs={"fetch": {"items": [1, 2]}},
        )


# --- registration and params --------------------------------------------------------


def test_http_request_and_transform_are_registered():
    assert {"http_request", "transform"} <= {t.name for t in stage_types()}


@pytest.mark.parametrize(
    ("stage_name", "params"),
    [
        ("http_request", {"url": "https://example.com/"}),
        (
            "http_request",
            {
                "url": "https://example.com/{input.id}",
                "method": "POST",
                "headers": {"X-Key": "v"},
                "body": [1, {"a": None}],
                "timeout_s": 0.1,
            },
        ),
        ("http_request", {"url": "https://example.com/", "method": "PUT", "body_from": "previous", "timeout_s": 60}),
        ("transform", {"select": {"a": "input.a"}}),
    ],
)
def test_valid_params_have_no_errors(stage_name, params):
    assert params_errors(get_stage_type(stage_name), params) == []


@pytest.mark.parametrize(
    ("stage_name", "params", "expected"),
    [
        ("http_request", {}, "params: 'url' is a required property"),
        ("http_request", {"url": "https://x/", "method": "HEAD"}, "method: 'HEAD' is not one of"),
        ("http_request", {"url": "https://x/", "timeout_s": 0.05}, "timeout_s: 0.05 is less than the minimum of 0.1"),
        ("http_request", {"url": "https://x/", "timeout_s": 61}, "timeout_s: 61 is greater than the maximum of 60"),
        (
            "http_request",
            {"url": "https://x/", "headers": {"X-N": 1}},
            "headers.X-N: 1 is not of type 'string', 'object'",
        ),
        ("http_request", {"url": "https://x/", "headers": {"Bad Name": "v"}}, "headers: 'Bad Name' does not match"),
        ("http_request", {"url": "https://x/", "body": {}, "body_from": "previous"}, "should not be valid under"),
        ("http_request", {"url": "https://x/", "verb": "GET"}, "Additional properties are not allowed ('verb'"),
        ("transform", {}, "params: 'select' is a required property"),
        ("transform", {"select": {}}, "select: {} should be non-empty"),
        ("transform", {"select": {"a": 1}}, "select.a: 1 is not of type 'string'"),
    ],
)
def test_bad_params_are_reported(stage_name, params, expected):
    errors = params_errors(get_stage_type(stage_name), params)

    assert len(errors) == 1
    assert expected in errors[0]


# --- http_request: secrets ------------------------------------------------------------


def test_secret_references_in_params_are_sent_resolved(private_allowed, httpserver, base_url, settings):
    settings.PIPELINE_SECRETS = {"HOOK": base_url + "/hook", "TOKEN": "t-1"}
    httpserver.expect_request("/hook", headers={"X-Token": "t-1"}, json={"auth": {"token": "t-1"}}).respond_with_json(
        {}
    )

    run_stage(
        "http_request",
        {
            "url": {"$secret": "HOOK"},
            "method": "POST",
            "headers": {"X-Token": {"$secret": "TOKEN"}},
            "body": {"auth": {"token": {"$secret": "TOKEN"}}},
        },
    )

    assert len(httpserver.log) == 1


def test_a_secret_reference_in_the_jobs_data_is_sent_as_it_is(private_allowed, httpserver, base_url, settings):
    settings.PIPELINE_SECRETS = {"TOKEN": "t-1"}
    httpserver.expect_request("/x", json={"$secret": "TOKEN"}).respond_with_json({})

    run_stage(
        "http_request",
        {"url": base_url + "/x", "method": "POST", "body_from": "input.payload"},
        input={"payload": {"$secret": "TOKEN"}},
    )

    assert len(httpserver.log) == 1
