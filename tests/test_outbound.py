"""The SSRF guard for outbound HTTP: check_url and safe_request against a real server on 127.0.0.1."""

import ipaddress
import socket
import time

import pytest
import requests
import urllib3.util.connection
from werkzeug import Response

from jobsite.outbound import UnsafeURL, check_url, is_public_address, safe_request

REAL_GETADDRINFO = socket.getaddrinfo


@pytest.fixture(autouse=True)
def connections(monkeypatch):
    """Every (host, port) urllib3 opens a connection to.

    Only loopback may be reached: should the guard fail, a test fails instead
    of sending traffic to a private network.
    """
    attempts = []
    real_create_connection = urllib3.util.connection.create_connection

    def create_connection(address, *args, **kwargs):
        attempts.append(address)
        resolved = {info[4][0] for info in socket.getaddrinfo(*address, type=socket.SOCK_STREAM)}
        assert resolved <= {"127.0.0.1", "::1"}, f"tests may only connect to loopback, not {resolved}"
        return real_create_connection(address, *args, **kwargs)

    monkeypatch.setattr(urllib3.util.connection, "create_connection", create_connection)
    return attempts


@pytest.fixture
def private_allowed(settings):
    settings.ALLOW_PRIVATE_NETWORK_URLS = True


@pytest.fixture
def private_refused(settings):
    settings.ALLOW_PRIVATE_NETWORK_URLS = False


@pytest.fixture
def base_url(httpserver):
    return f"http://127.0.0.1:{httpserver.port}"


def fake_dns(monkeypatch, answers_by_host):
    """Answer getaddrinfo for the given hosts from `answers_by_host` (host -> callable returning IPs)."""

    def getaddrinfo(host, port, *args, **kwargs):
        if host not in answers_by_host:
            return REAL_GETADDRINFO(host, port, *args, **kwargs)
        answers = []
        for ip in answers_by_host[host]():
            if ":" in ip:
                answers.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "", (ip, port, 0, 0)))
            else:
                answers.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port)))
        return answers

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


# --- is_public_address ------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.255.0.9",
        "10.1.2.3",
        "172.16.0.1",
        "172.31.255.254",
        "192.168.0.1",
        "169.254.169.254",
        "100.64.0.1",  # carrier-grade NAT
        "0.0.0.0",  # noqa: S104 - an address under test, not a bind
        "224.0.0.1",  # multicast, which `is_global` alone lets through
        "240.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "2002:7f00:1::",  # 6to4 wrapping 127.0.0.1
        "2002:a9fe:a9fe::",  # 6to4 wrapping 169.254.169.254
        "64:ff9b::7f00:1",  # NAT64 wrapping 127.0.0.1
    ],
)
def test_non_public_addresses_are_not_public(address):
    assert not is_public_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["8.8.8.8", "93.184.216.34", "2606:4700:4700::1111", "2002:808:808::"])
def test_global_unicast_addresses_are_public(address):
    assert is_public_address(ipaddress.ip_address(address))


# --- check_url: the URL's form ----------------------------------------------------


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://127.0.0.1/file", "Only http and https"),
        ("file:///etc/passwd", "Only http and https"),
        ("/relative/path", "Only http and https"),
        ("localhost:8000/path", "Only http and https"),
        ("http://user:secret@127.0.0.1/", "credentials"),
        ("http://user@127.0.0.1/", "credentials"),
        ("http://:secret@127.0.0.1/", "credentials"),
        ("http:///path", "no host"),
        ("http://:8080/path", "no host"),
        ("http://127.0.0.1:99999/", "Not a valid URL"),
    ],
)
def test_check_url_refuses_malformed_urls_even_when_private_networks_are_allowed(url, message):
    with pytest.raises(UnsafeURL, match=message):
        check_url(url, allow_private=True)


def test_check_url_accepts_loopback_when_private_networks_are_allowed(base_url):
    check_url(base_url + "/path?x=1", allow_private=True)


def test_check_url_follows_the_setting_when_allow_private_is_not_given(settings, base_url):
    settings.ALLOW_PRIVATE_NETWORK_URLS = True
    check_url(base_url)

    settings.ALLOW_PRIVATE_NETWORK_URLS = False
    with pytest.raises(UnsafeURL, match="not a public address"):
        check_url(base_url)


# --- check_url and safe_request: where the host points ----------------------------


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "127.1",
        "2130706433",  # 127.0.0.1 written as one decimal number
        "localhost",  # a name that resolves to loopback
        "10.0.0.1",
        "192.168.1.1",
        "172.16.0.1",
        "169.254.169.254",
        "[::1]",
        "0.0.0.0",  # noqa: S104 - an address under test, not a bind
        "[::ffff:127.0.0.1]",
    ],
)
def test_safe_request_refuses_non_public_hosts_without_connecting(private_refused, httpserver, connections, host):
    httpserver.expect_request("/").respond_with_data("reached")

    with pytest.raises(UnsafeURL, match="not a public address"):
        safe_request("GET", f"http://{host}:{httpserver.port}/")

    assert connections == []
    assert httpserver.log == []


def test_a_host_with_any_non_public_address_is_refused(monkeypatch):
    fake_dns(monkeypatch, {"mixed.example": lambda: ["93.184.216.34", "10.0.0.5"]})

    with pytest.raises(UnsafeURL, match=r"'mixed.example' resolves to 10\.0\.0\.5"):
        check_url("https://mixed.example/", allow_private=False)


def test_a_link_local_ipv6_answer_with_a_zone_id_is_refused(monkeypatch):
    fake_dns(monkeypatch, {"zoned.example": lambda: ["fe80::1%eth0"]})

    with pytest.raises(UnsafeURL, match="fe80::1%eth0"):
        check_url("http://zoned.example/", allow_private=False)


def test_a_host_with_only_public_addresses_passes(monkeypatch):
    fake_dns(monkeypatch, {"public.example": lambda: ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"]})

    check_url("https://public.example/path", allow_private=False)


def test_an_unresolvable_host_is_refused(monkeypatch):
    def no_such_host(host, *args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_host)

    with pytest.raises(UnsafeURL, match="could not be resolved"):
        check_url("http://no-such-host.invalid/", allow_private=False)


def test_a_host_that_rebinds_to_loopback_after_the_check_is_refused_before_the_request_is_sent(
    monkeypatch, private_refused, httpserver
):
    httpserver.expect_request("/").respond_with_data("reached")
    lookups = iter(["93.184.216.34"])
    fake_dns(monkeypatch, {"rebind.example": lambda: [next(lookups, "127.0.0.1")]})

    with pytest.raises(UnsafeURL, match=r"Refused to talk to 127\.0\.0\.1"):
        safe_request("GET", f"http://rebind.example:{httpserver.port}/")

    assert httpserver.log == []


# --- safe_request -----------------------------------------------------------------


def test_safe_request_returns_the_response_with_its_body_read(private_allowed, httpserver, base_url):
    httpserver.expect_request("/data", method="POST", json={"a": 1}).respond_with_data(
        b'{"ok": true}', status=201, content_type="application/json"
    )

    response = safe_request("POST", base_url + "/data", json={"a": 1})

    assert response.status_code == 201
    assert response.json() == {"ok": True}
    assert response.content == b'{"ok": true}'


def test_safe_request_does_not_follow_redirects(private_allowed, httpserver, base_url):
    httpserver.expect_request("/start").respond_with_data("", status=302, headers={"Location": "/elsewhere"})
    httpserver.expect_request("/elsewhere").respond_with_data("followed")

    response = safe_request("GET", base_url + "/start")

    assert response.status_code == 302
    assert response.headers["Location"] == "/elsewhere"
    assert [request.path for request, _ in httpserver.log] == ["/start"]


def test_safe_request_refuses_a_body_larger_than_max_bytes(private_allowed, httpserver, base_url):
    httpserver.expect_request("/big").respond_with_data(b"x" * 101)

    with pytest.raises(ValueError, match="larger than the 100-byte limit"):
        safe_request("GET", base_url + "/big", max_bytes=100)


def test_safe_request_refuses_a_streamed_body_without_a_length_once_it_passes_max_bytes(
    private_allowed, httpserver, base_url
):
    chunks_sent = []

    def endless():
        while len(chunks_sent) < 1000:
            chunks_sent.append(1)
            yield b"y" * 1024

    httpserver.expect_request("/stream").respond_with_response(Response(endless()))

    with pytest.raises(ValueError, match="larger than the 4096-byte limit"):
        safe_request("GET", base_url + "/stream", max_bytes=4096)


def test_safe_request_accepts_a_body_of_exactly_max_bytes(private_allowed, httpserver, base_url):
    httpserver.expect_request("/exact").respond_with_data(b"z" * 100)

    assert safe_request("GET", base_url + "/exact", max_bytes=100).content == b"z" * 100


def test_safe_request_times_out_on_a_slow_server(private_allowed, httpserver, base_url):
    def slow(request):
        time.sleep(0.3)
        return Response("late")

    httpserver.expect_request("/slow").respond_with_handler(slow)
    started = time.monotonic()

    with pytest.raises(requests.Timeout):
        safe_request("GET", base_url + "/slow", timeout=0.1)

    assert time.monotonic() - started < 0.3
    # The server answers after the client gave up: wait for it, so that its late log entry
    # belongs to this test and not to the next one that shares the server.
    deadline = time.monotonic() + 5
    while not httpserver.log and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(httpserver.log) == 1


def test_safe_request_raises_connection_error_for_a_closed_port(private_allowed):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    with pytest.raises(requests.ConnectionError):
        safe_request("GET", f"http://127.0.0.1:{port}/")


def test_safe_request_checks_the_url_before_anything_else(private_allowed, connections):
    with pytest.raises(UnsafeURL):
        safe_request("GET", "ftp://127.0.0.1/")

    assert connections == []
