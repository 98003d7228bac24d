"""The guarded HTTP client refuses every way into our own network, checks every redirect hop,
pins the connection to the address it checked, and bounds time and size.

No test here sends traffic anywhere but 127.0.0.1: every refusal happens before a connection.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.conf import settings
from django.test import override_settings

from workflows.outbound import (
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
                server.requests.append({"method": self.command, "path": self.path, "host": self.headers["Host"],
                                        "body": body.decode(errors="replace")})
                status, headers, content, delay = server.routes.get(self.path, (404, {}, b"no", 0))
                time.sleep(delay)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                try:
                    self.wfile.write(content)
                except OSError:
                    pass

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


@pytest.mark.parametrize("target", [
    "http://127.0.0.1:{port}/final",
    "http://localhost:{port}/final",
    "http://[::ffff:127.0.0.1]:{port}/final",
    "http://169.254.169.254/latest/meta-data/",
    "http://10.0.0.1/",
    "file:///etc/passwd",
    "gopher://127.0.0.1:{port}/",
])
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
        GuardedClient(timeout=5, trust_first_hop_for_tests=True).post(server.url("/start"), content=b"{}")
    assert [r["path"] for r in server.requests] == ["/start"]


def test_it_connects_to_the_address_it_checked_and_keeps_the_name_in_the_host_header(server: Server) -> None:
    client = GuardedClient(timeout=5)
    target = client.check(f"http://localhost:{server.port}/hook?x=1", trusted=True)
    assert target.ip.is_loopback
    assert target.pinned_url.startswith(("http://127.0.0.1:", "http://[::1]:"))
    assert target.pinned_url.endswith(f":{server.port}/hook?x=1")
    assert target.host_header == f"localhost:{server.port}"

    server.routes["/hook?x=1"] = (200, {}, b"ok", 0)
    response = GuardedClient(timeout=5, trust_first_hop_for_tests=True).post(
        f"http://localhost:{server.port}/hook?x=1", content=b'{"a": 1}')
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
    with override_settings(OUTBOUND_ALLOW_PRIVATE_FOR_TESTS=True), pytest.raises(OutboundError, match="larger"):
        GuardedClient(timeout=5, max_bytes=10_000).get(server.url("/big"))


def test_a_slow_server_times_out(server: Server) -> None:
    server.routes["/slow"] = (200, {}, b"late", 3)
    started = time.monotonic()
    with override_settings(OUTBOUND_ALLOW_PRIVATE_FOR_TESTS=True), pytest.raises(OutboundError):
        GuardedClient(timeout=0.5).get(server.url("/slow"))
    assert time.monotonic() - started < 2.5
