"""The guarded HTTP client refuses every way into our own network, checks every redirect hop,
pins the connection to the address it checked, and bounds time and size.

No test here sends traffic anywhere but 127.0.0.1: every refusal happens before a connection.
"""

from __future__ import annotations

import contextlib
import ipaddress
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.conf import settings
from django.test import override_settings

from config.lib.outbound import (
    GuardedClient,
    OutboundError,
    OutboundRefused,
    address_refusal,
    url_refusal,
)

REFUSED_URLS = [
    "http://127.1/",
    "http://0x7f000001/",
    "http://2130706433/",
    "http://0177.0.0.1/",
    "http://127.0.0.1:8000/admin/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::1]/",
    "http://0.0.0.0/",
    "http://169.254.169.254/latest/meta-data/",
    "http://[fe80::1]/",
    "http://10.0.0.1/",
    "http://10.255.255.254/",
    "http://172.16.0.1/",
    "http://172.31.255.254/",
    "http://192.168.0.1/",
    "http://192.168.255.254/",
    "http://100.64.0.1/",
    "http://100.127.255.254/",
    "http://[fc00::1]/",
    "http://[fd12:3456:789a::1]/",
    "http://[fd00:ec2::254]/",
    "http://224.0.0.1/",
    "http://[ff02::1]/",
    "http://[64:ff9b::a00:1]/",
    "http://[2002:c0a8:101::1]/",
    "http://240.0.0.1/",
    "http://localhost/",
    "http://localhost:9/callback",
    "https://localhost/",
    "file:///etc/passwd",
    "gopher://127.0.0.1:70/_stats",
    "gopher://example.com/",
    "ftp://example.com/file",
    "dict://127.0.0.1:11211/stats",
    "http://user:password@example.com/",
    "not a url",
]


@pytest.mark.parametrize("url", REFUSED_URLS)
def test_it_refuses_every_url_that_leads_into_our_network(url: str) -> None:
    with pytest.raises(OutboundRefused):
        GuardedClient(timeout=2).post(url, content=b"{}")


@pytest.mark.parametrize("address", ["8.8.8.8", "93.184.216.34", "2606:4700:4700::1111", "1.1.1.1"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert address_refusal(ipaddress.ip_address(address)) is None


# Every special-purpose range of IANA's IPv4 and IPv6
# registries, by a first and a last address (or a
# sample inside), each spelled in every form that reaches it: plain, IPv4-mapped (::ffff:a.b.c.d),
# IPv4-compatible (::a.b.c.d), 6to4 (2002:AABB:CCDD::), NAT64 (64:ff9b::/96, 64:ff9b:1::/48) and
# Teredo. The deny list is explicit so that the answer cannot depend on the Python version
# (`is_global` called 192.0.0.192 public before 3.12.4, and still calls fec0::/10 public).
SPECIAL_IPV4 = [
    "0.0.0.0",
    "0.255.255.255",  # "this network"
    "10.0.0.0",
    "10.255.255.255",  # private
    "100.64.0.0",
    "100.127.255.255",  # shared address space (CGNAT)
    "127.0.0.0",
    "127.255.255.255",  # loopback
    "169.254.0.0",
    "169.254.169.254",
    "169.254.255.255",  # link-local, cloud metadata
    "172.16.0.0",
    "172.31.255.255",  # private
    "192.0.0.0",
    "192.0.0.8",
    "192.0.0.9",
    "192.0.0.170",
    "192.0.0.192",
    "192.0.0.255",  # IETF protocol assignments
    "192.0.2.0",
    "192.0.2.255",  # documentation (TEST-NET-1)
    "192.31.196.1",
    "192.52.193.1",
    "192.175.48.1",  # AS112, AMT, direct delegation AS112
    "192.88.99.0",
    "192.88.99.255",  # 6to4 relay anycast
    "192.168.0.0",
    "192.168.255.255",  # private
    "198.18.0.0",
    "198.19.255.255",  # benchmarking
    "198.51.100.0",
    "198.51.100.255",  # documentation (TEST-NET-2)
    "203.0.113.0",
    "203.0.113.255",  # documentation (TEST-NET-3)
    "224.0.0.0",
    "239.255.255.255",  # multicast
    "240.0.0.0",
    "255.255.255.254",  # reserved
    "255.255.255.255",  # limited broadcast
]
SPECIAL_IPV6 = [
    "::",
    "::1",  # unspecified, loopback
    "::2",
    "::a00:1",
    "::8.8.8.8",  # IPv4-compatible (deprecated), whatever it embeds
    "::ffff:0:808:808",  # IPv4-translated (SIIT)
    "100::",
    "100::ffff:ffff:ffff:ffff",  # discard-only
    "2001::",
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",
    "2001:1ff:ffff::",  # IETF protocol assignments, Teredo
    "2001:2::1",
    "2001:10::1",
    "2001:20::1",  # benchmarking, ORCHID
    "2001:db8::",
    "2001:db8:ffff:ffff::1",  # documentation
    "3fff::1",
    "3fff:fff:ffff::1",  # documentation (2024)
    "2620:4f:8000::1",  # AS112-v6
    "5f00::1",  # SRv6 SIDs
    "fc00::",
    "fd00:ec2::254",
    "fdff:ffff::1",  # unique local (AWS metadata's IPv6 address)
    "fe80::",
    "fe80::1",
    "febf:ffff::1",  # link-local
    "fec0::",
    "fec0::1",
    "feff:ffff::1",  # site-local (deprecated): `is_global` misses it
    "ff00::",
    "ff02::1",
    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",  # multicast
    "4000::1",
    "e000::1",  # outside global unicast 2000::/3: not assigned
    "64:ff9b:1:808:8:800::",
    "64:ff9b:1:1::808:808",  # local-use NAT64 other than /96: ambiguous
]


def _v4_wrappings(v4: str) -> list[str]:
    packed = ipaddress.IPv4Address(v4).packed
    high, low = packed[:2].hex(), packed[2:].hex()
    # 64:ff9b:1::/48 is local-use NAT64 (RFC 8215):
    # only its /96 form says where the IPv4 address is.
    return [v4, f"::ffff:{v4}", f"2002:{high}:{low}::1", f"64:ff9b::{v4}", f"64:ff9b:1::{v4}"]


@pytest.mark.parametrize(
    "address", [form for v4 in SPECIAL_IPV4 for form in _v4_wrappings(v4)] + SPECIAL_IPV6
)
def test_it_refuses_every_special_purpose_address_in_every_spelling(address: str) -> None:
    ip = ipaddress.ip_address(address)
    assert address_refusal(ip) is not None, address
    assert url_refusal(f"http://{address if ip.version == 4 else f'[{address}]'}/") is not None


@pytest.mark.parametrize(
    "address",
    [
        "8.8.8.8",
        "1.1.1.1",
        "9.255.255.255",
        "11.0.0.0",
        "100.63.255.255",
        "100.128.0.0",
        "126.255.255.255",
        "128.0.0.0",
        "169.253.255.255",
        "169.255.0.0",
        "172.15.255.255",
        "172.32.0.0",
        "191.255.255.255",
        "192.0.1.0",
        "192.0.3.0",
        "192.88.98.255",
        "192.88.100.0",
        "192.167.255.255",
        "192.169.0.0",
        "198.17.255.255",
        "198.20.0.0",
        "198.51.99.255",
        "198.51.101.0",
        "203.0.112.255",
        "203.0.114.0",
        "223.255.255.255",
    ],
)
def test_it_allows_public_ipv4_addresses_next_to_the_special_ranges_in_every_spelling(
    address: str,
) -> None:
    for form in _v4_wrappings(address):
        assert address_refusal(ipaddress.ip_address(form)) is None, form


@pytest.mark.parametrize(
    "address",
    [
        "2606:4700:4700::1111",
        "2a00:1450:4007:80e::200e",
        "2001:200::1",
        "2001:4860:4860::8888",
        "2001:db7:ffff::1",
        "2001:db9::1",
        "2620:4f:7fff::1",
        "2620:4f:8001::1",
        "3ffe::1",
    ],
)
def test_it_allows_public_ipv6_addresses(address: str) -> None:
    assert address_refusal(ipaddress.ip_address(address)) is None


def test_a_scoped_ipv6_address_is_refused() -> None:
    assert address_refusal(ipaddress.ip_address("2606:4700:4700::1111%eth0")) is not None


def test_the_project_requires_a_python_whose_ipaddress_module_is_fixed() -> None:
    root = Path(__file__).resolve().parent.parent
    assert 'requires-python = ">=3.12.4"' in (root / "pyproject.toml").read_text()
    assert "(3, 12, 4)" in (root / "Makefile").read_text()


def test_forms_refuse_literal_private_addresses_without_resolving_names() -> None:
    assert url_refusal("https://hooks.example.com/stepwise") is None
    assert "private" in (url_refusal("http://10.1.2.3/x") or "")
    assert "loopback" in (url_refusal("http://[::ffff:127.0.0.1]/") or "")
    assert "http" in (url_refusal("file:///etc/passwd") or "")


def test_private_addresses_are_refused_by_default() -> None:
    assert settings.OUTBOUND_ALLOW_PRIVATE_FOR_TESTS is False


class Server:
    """A local HTTP server with scripted answers per path; records what it received."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, dict[str, str], bytes, float]] = {}
        self.requests: list[dict[str, str]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                server.requests.append(
                    {
                        "method": self.command,
                        "path": self.path,
                        "host": self.headers["Host"],
                        "body": body.decode(errors="replace"),
                    }
                )
                status, headers, content, delay = server.routes.get(self.path, (404, {}, b"no", 0))
                time.sleep(delay)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                with contextlib.suppress(OSError):
                    self.wfile.write(content)

            do_GET = do_POST = _answer

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.1:{port}/final",
        "http://localhost:{port}/final",
        "http://[::ffff:127.0.0.1]:{port}/final",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/",
        "file:///etc/passwd",
        "gopher://127.0.0.1:{port}/",
    ],
)
def test_a_redirect_to_a_private_address_is_refused(server: Server, target: str) -> None:
    target = target.format(port=server.port)
    server.routes["/start"] = (302, {"Location": target}, b"", 0)
    server.routes["/final"] = (200, {}, b"secret", 0)
    # The first hop is trusted (it is this test's local server); the redirect is checked.
    client = GuardedClient(timeout=5, trust_first_hop_for_tests=True)
    with pytest.raises(OutboundRefused):
        client.post(server.url("/start"), content=b"{}")
    assert [r["path"] for r in server.requests] == ["/start"]


def test_a_relative_redirect_is_checked_too(server: Server) -> None:
    server.routes["/start"] = (307, {"Location": "/final"}, b"", 0)
    with pytest.raises(OutboundRefused):
        GuardedClient(timeout=5, trust_first_hop_for_tests=True).post(
            server.url("/start"), content=b"{}"
        )
    assert [r["path"] for r in server.requests] == ["/start"]


def test_it_connects_to_the_address_it_checked_and_keeps_the_name_in_the_host_header(
    server: Server,
) -> None:
    client = GuardedClient(timeout=5)
    target = client.check(f"http://localhost:{server.port}/hook?x=1", trusted=True)
    assert target.ip.is_loopback
    assert target.pinned_url.startswith(("http://127.0.0.1:", "http://[::1]:"))
    assert target.pinned_url.endswith(f":{server.port}/hook?x=1")
    assert target.host_header == f"localhost:{server.port}"

    server.routes["/hook?x=1"] = (200, {}, b"ok", 0)
    response = GuardedClient(timeout=5, trust_first_hop_for_tests=True).post(
        f"http://localhost:{server.port}/hook?x=1", content=b'{"a": 1}'
    )
    assert response.status_code == 200 and response.content == b"ok"
    assert server.requests[-1]["host"] == f"localhost:{server.port}"
    assert server.requests[-1]["body"] == '{"a": 1}'


def test_the_allow_private_setting_is_read_at_call_time(server: Server) -> None:
    server.routes["/ok"] = (200, {}, b"fine", 0)
    with pytest.raises(OutboundRefused):
        GuardedClient(timeout=5).get(server.url("/ok"))
    with override_settings(OUTBOUND_ALLOW_PRIVATE_FOR_TESTS=True):
        assert GuardedClient(timeout=5).get(server.url("/ok")).content == b"fine"
    # Even then, only http and https.
    with override_settings(OUTBOUND_ALLOW_PRIVATE_FOR_TESTS=True), pytest.raises(OutboundRefused):
        GuardedClient(timeout=5).get("file:///etc/passwd")


def test_it_follows_redirects_itself_and_turns_a_302_post_into_a_get(server: Server) -> None:
    server.routes["/a"] = (302, {"Location": "/b"}, b"", 0)
    server.routes["/b"] = (200, {}, b"done", 0)
    with override_settings(OUTBOUND_ALLOW_PRIVATE_FOR_TESTS=True):
        response = GuardedClient(timeout=5).post(server.url("/a"), content=b"{}")
    assert response.content == b"done"
    assert [(r["method"], r["path"]) for r in server.requests] == [("POST", "/a"), ("GET", "/b")]


def test_it_stops_after_too_many_redirects(server: Server) -> None:
    server.routes["/loop"] = (302, {"Location": "/loop"}, b"", 0)
    with override_settings(OUTBOUND_ALLOW_PRIVATE_FOR_TESTS=True), pytest.raises(OutboundError):
        GuardedClient(timeout=5, max_redirects=3).get(server.url("/loop"))
    assert len(server.requests) == 4


def test_a_response_larger_than_the_cap_is_refused(server: Server) -> None:
    server.routes["/big"] = (200, {}, b"x" * 200_000, 0)
    with (
        override_settings(OUTBOUND_ALLOW_PRIVATE_FOR_TESTS=True),
        pytest.raises(OutboundError, match="larger"),
    ):
        GuardedClient(timeout=5, max_bytes=10_000).get(server.url("/big"))


def test_a_slow_server_times_out(server: Server) -> None:
    server.routes["/slow"] = (200, {}, b"late", 3)
    started = time.monotonic()
    with override_settings(OUTBOUND_ALLOW_PRIVATE_FOR_TESTS=True), pytest.raises(OutboundError):
        GuardedClient(timeout=0.5).get(server.url("/slow"))
    assert time.monotonic() - started < 2.5


def test_a_body_is_not_sent_again_to_another_origin_by_a_307(server: Server) -> None:
    """The http step cleans the headers on a cross-origin redirect; a 307/308 would
    resend the body (which can hold a secret) there: refused, not followed."""
    other = server.url("/collect", host="localhost")
    server.routes["/start"] = (307, {"Location": other}, b"", 0)
    server.routes["/same"] = (308, {"Location": "/done"}, b"", 0)
    server.routes["/done"] = (200, {}, b"ok", 0)
    with override_settings(OUTBOUND_ALLOW_PRIVATE_FOR_TESTS=True):
        client = GuardedClient(timeout=5, cross_origin_headers=frozenset({"content-type"}))
        with pytest.raises(OutboundRefused, match="another origin"):
            client.post(server.url("/start"), content=b'{"key": "s3cret"}')
        # The same origin keeps the body, as a 308 should.
        assert client.post(server.url("/same"), content=b"body").content == b"ok"
    assert [r["path"] for r in server.requests] == ["/start", "/same", "/done"]
    assert server.requests[-1]["body"] == "body"
