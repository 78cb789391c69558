"""Outbound HTTP that user-supplied URLs cannot turn against the service's own network.

Pipelines and webhooks send requests to URLs that users choose. Without a guard,
such a URL can reach the database, the cloud metadata service
(169.254.169.254) or anything else only the server can see (server-side
request forgery). Unless `ALLOW_PRIVATE_NETWORK_URLS` is on, every outbound
request goes through :func:`safe_request`, which refuses URLs whose host
resolves to a non-public address, and checks the address it actually connects
to again, so a DNS answer that changes between the check and the connection
(DNS rebinding) cannot slip through.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
import time
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from django.conf import settings

if TYPE_CHECKING:
    import requests

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class UnsafeURL(ValueError):
    """The URL may not be requested: bad form, or its host is not a public address."""

    retryable = False  # the same URL is refused again: a stage's retries would not help


def is_public_address(ip: IPAddress) -> bool:
    """Whether `ip`, and any IPv4 address it embeds, is a globally routable unicast address.

    `is_global` alone is not enough: multicast and some reserved ranges count
    as global, and an IPv4-mapped (`::ffff:127.0.0.1`) or 6to4 address
    reaches whatever IPv4 address it wraps. (NAT64 prefixes fall in `::/8`,
    which `is_reserved` refuses whole.)
    """
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is not None and not is_public_address(embedded):
            return False
    return ip.is_global and not (
        ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_multicast or ip.is_reserved or ip.is_unspecified
    )


def _parse_address(text: str) -> IPAddress:
    # Link-local IPv6 answers carry a zone id ("fe80::1%eth0"); the zone does not change the category.
    return ipaddress.ip_address(text.split("%", 1)[0])


def check_url(url: str, *, allow_private: bool | None = None, resolve: bool = True) -> None:
    """Raise :class:`UnsafeURL` unless `url` is an http(s) URL the service may request.

    The URL must be http or https, name a host and carry no credentials (they
    would be sent to whoever the host is, and end up in logs). Unless private
    addresses are allowed (`allow_private`, by default the
    `ALLOW_PRIVATE_NETWORK_URLS` setting), the host is resolved and refused if
    any of its addresses is not public: an attacker who controls the DNS answer
    may choose which of them the client connects to. With `resolve=False` (a
    cheap check when a URL is stored, the request itself checking again) only a
    host written as an address, or `localhost`, is judged.
    """
    if allow_private is None:
        allow_private = settings.ALLOW_PRIVATE_NETWORK_URLS
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    except ValueError as exc:
        raise UnsafeURL(f"Not a valid URL: {exc}.") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise UnsafeURL(f"Only http and https URLs are allowed, not {parts.scheme or 'a relative URL'!r}.")
    if "@" in parts.netloc:
        raise UnsafeURL("URLs may not contain credentials; send them in a header instead.")
    if not parts.hostname:
        raise UnsafeURL("The URL has no host.")
    if allow_private:
        return
    if not resolve:
        _refuse_private_literal(parts.hostname)
        return
    try:
        answers = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:  # socket.gaierror is an OSError; bad IDNA labels raise UnicodeError
        raise UnsafeURL(f"The host {parts.hostname!r} could not be resolved: {exc}.") from None
    for *_, sockaddr in answers:
        if not is_public_address(_parse_address(sockaddr[0])):
            raise UnsafeURL(
                f"The host {parts.hostname!r} resolves to {sockaddr[0]}, which is not a public address "
                "(set ALLOW_PRIVATE_NETWORK_URLS to allow private networks)."
            )


def _refuse_private_literal(host: str) -> None:
    host = host.rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        raise UnsafeURL(
            f"The host {host!r} is this machine (set ALLOW_PRIVATE_NETWORK_URLS to allow private networks)."
        )
    try:
        address = _parse_address(host)
    except ValueError:
        return  # a name: resolved when the request is made
    if not is_public_address(address):
        raise UnsafeURL(
            f"The host {host} is not a public address (set ALLOW_PRIVATE_NETWORK_URLS to allow private networks)."
        )


def _refuse_private_peer(sock: socket.socket) -> None:
    address = sock.getpeername()[0]
    if not is_public_address(_parse_address(address)):
        sock.close()
        raise UnsafeURL(f"Refused to talk to {address}, which is not a public address.")


@functools.cache
def _public_only_adapter_class() -> type:
    """The requests adapter that checks the address each new connection actually reached, before a byte is sent.

    Built on first use: requests and urllib3 (about 3 MB) load only in
    processes that send a request, not in every worker and web process.
    """
    from requests.adapters import HTTPAdapter
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    class PublicHTTPConnection(HTTPConnection):
        def _new_conn(self) -> socket.socket:
            sock = super()._new_conn()
            _refuse_private_peer(sock)
            return sock

    class PublicHTTPSConnection(HTTPSConnection):
        def _new_conn(self) -> socket.socket:
            sock = super()._new_conn()
            _refuse_private_peer(sock)
            return sock

    class PublicHTTPPool(HTTPConnectionPool):
        ConnectionCls = PublicHTTPConnection

    class PublicHTTPSPool(HTTPSConnectionPool):
        ConnectionCls = PublicHTTPSConnection

    class PublicOnlyAdapter(HTTPAdapter):
        def init_poolmanager(self, *args, **kwargs):
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = {"http": PublicHTTPPool, "https": PublicHTTPSPool}

    return PublicOnlyAdapter


def safe_request(
    method: str,
    url: str,
    *,
    allow_private: bool | None = None,
    timeout: float | tuple[float, float] = 10,
    max_bytes: int = 10 * 1024 * 1024,
    truncate: bool = False,
    **kwargs,
) -> requests.Response:
    """Send one request to `url` after :func:`check_url`; return the response with its body read.

    Redirects are not followed (the response is returned as it is): following
    one would reach a URL nobody checked. `timeout` bounds each wait on the server and
    the whole body download, so a server trickling bytes cannot hold a worker.
    A body over `max_bytes` (after decompression) raises ValueError, or with
    `truncate` is cut there (the rest is never read). `timeout` may be a
    `(connect, read)` pair; the body download is bounded by their sum.
    Environment proxies and `.netrc` are ignored: credentials from the server's
    environment must not go to a URL a user chose. Other keyword arguments go to
    :meth:`requests.Session.request`.
    """
    import requests

    if allow_private is None:
        allow_private = settings.ALLOW_PRIVATE_NETWORK_URLS
    check_url(url, allow_private=allow_private)
    deadline = time.monotonic() + (sum(timeout) if isinstance(timeout, tuple) else timeout)
    with requests.Session() as session:
        session.trust_env = False
        if not allow_private:
            adapter = _public_only_adapter_class()
            session.mount("http://", adapter())
            session.mount("https://", adapter())
        response = session.request(method, url, timeout=timeout, allow_redirects=False, stream=True, **kwargs)
        with response:
            declared = response.headers.get("Content-Length", "")
            if not truncate and declared.isdigit() and int(declared) > max_bytes:
                raise ValueError(f"The response body ({declared} bytes) is larger than the {max_bytes}-byte limit.")
            body = bytearray()
            for chunk in response.iter_content(chunk_size=min(64 * 1024, max_bytes + 1)):
                body += chunk
                if len(body) > max_bytes:
                    if truncate:
                        del body[max_bytes:]
                        break
                    raise ValueError(f"The response body is larger than the {max_bytes}-byte limit.")
                if time.monotonic() > deadline:
                    raise requests.ReadTimeout(f"The response body took longer than {timeout} s to arrive.")
    response._content = bytes(body)
    return response
