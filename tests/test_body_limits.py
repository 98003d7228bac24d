"""Request body limits act before the body is read (config/lib/body_limit.py), against a real
uvicorn.

Django's ASGI handler reads a whole request body before any view runs, so these
tests speak raw HTTP to `uvicorn config.asgi:application` and check that a too-large
request is answered 413 while the client is still sending (or before it starts), and
that the server stops reading.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import IDLE_QUEUE, Personas
from tests.factories import hook_path, published_workflow, signed
from tests.servers import AsgiServer
from workflows.integrations import triggers
from workflows.models import Run


@pytest.fixture(scope="module")
def shared_server(worker_env: dict[str, str]) -> Iterator[AsgiServer]:
    # No Celery worker: nothing here needs a run to finish. One server for the
    # module: it keeps no state between requests but what the database holds.
    server = AsgiServer({**worker_env, "CELERY_QUEUE": IDLE_QUEUE})
    yield server
    server.stop()


@pytest.fixture
def server(shared_server: AsgiServer, transactional_db: None) -> AsgiServer:
    """The module's server, on data this test commits (the server is another process)."""
    return shared_server


def connect(server: AsgiServer) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    return sock


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response: its status, lower-case headers and body (by Content-Length)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"The server closed the connection without an answer: {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {
        name.strip().lower(): value.strip()
        for name, _, value in (line.partition(":") for line in lines)
    }
    while len(body) < int(headers.get("content-length", "0")):
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(status_line.split()[1]), headers, body


def head(path: str, *lines: str) -> bytes:
    return ("\r\n".join([f"POST {path} HTTP/1.1", "Host: 127.0.0.1", *lines]) + "\r\n\r\n").encode()


def test_a_declared_length_over_the_webhook_limit_is_refused_before_any_body_is_sent(
    server: AsgiServer,
) -> None:
    # 300 MB announced, nothing sent: the answer cannot wait for the body.
    sock = connect(server)
    sock.sendall(
        head("/hooks/does-not-exist", "Content-Type: application/json", "Content-Length: 300000000")
    )
    started = time.monotonic()
    status, headers, body = read_response(sock)
    assert time.monotonic() - started < 5
    assert status == 413
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {
        "error": "The request body is larger than 1 MB.",
        "details": {"limit_bytes": 1_000_000},
    }
    assert headers["connection"] == "close"
    assert sock.recv(1) == b""  # closed: the server reads none of the 300 MB
    sock.close()


def test_a_declared_length_over_the_default_limit_gets_a_small_html_page_elsewhere(
    server: AsgiServer,
) -> None:
    sock = connect(server)
    sock.sendall(
        head(
            "/accounts/login/",
            "Content-Type: application/x-www-form-urlencoded",
            "Content-Length: 40000000",
        )
    )
    status, headers, body = read_response(sock)
    assert status == 413
    assert headers["content-type"].startswith("text/html")
    assert b"larger than 2.5 MB" in body
    sock.close()


def test_the_api_refuses_over_its_limit_as_json_and_accepts_under_it(server: AsgiServer) -> None:
    sock = connect(server)
    sock.sendall(
        head(
            "/api/v1/workflows/validate",
            "Content-Type: application/json",
            "Content-Length: 2500001",
        )
    )
    status, headers, body = read_response(sock)
    assert status == 413
    assert json.loads(body)["error"] == "The request body is larger than 2.5 MB."
    sock.close()
    # Just under the limit goes through to the API (which wants a token).
    just_under = json.dumps({"name": "x" * (2_500_000 - 12)}).encode()
    assert len(just_under) == 2_500_000
    response = httpx.post(
        f"{server.url}/api/v1/workflows/validate",
        content=just_under,
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 401
    assert response.json()["error"]


def send_chunked(
    server: AsgiServer, path: str, total: int
) -> tuple[int, dict[str, str], bytes, int, int]:
    """POST `total` bytes chunked to `path` from one thread while another reads the answer.
    Returns the answer, the bytes sent when it arrived, and the bytes sent in all."""
    sock = connect(server)
    sock.sendall(head(path, "Content-Type: application/json", "Transfer-Encoding: chunked"))
    chunk = b"x" * 65536
    frame = b"%x\r\n" % len(chunk) + chunk + b"\r\n"
    sent = 0

    def send_body() -> None:
        nonlocal sent
        try:
            while sent < total:
                sock.sendall(frame)
                sent += len(chunk)
            sock.sendall(b"0\r\n\r\n")
        except OSError:  # the server closed the connection: it stopped reading
            pass

    sender = threading.Thread(target=send_body, daemon=True)
    sender.start()
    status, headers, body = read_response(sock)
    sent_when_answered = sent
    sender.join(30)
    sock.close()
    return status, headers, body, sent_when_answered, sent


def test_a_chunked_body_is_cut_off_once_it_passes_the_webhook_limit(server: AsgiServer) -> None:
    total = 200_000_000
    status, headers, body, sent_when_answered, sent = send_chunked(
        server, "/hooks/does-not-exist", total
    )
    assert status == 413
    assert json.loads(body)["error"] == "The request body is larger than 1 MB."
    # Answered while the client was still sending, and the server then stopped reading.
    assert sent_when_answered < 20_000_000
    assert sent < total


def test_a_chunked_body_is_cut_off_once_it_passes_the_default_limit(server: AsgiServer) -> None:
    status, headers, body, sent_when_answered, sent = send_chunked(
        server, "/accounts/login/", 200_000_000
    )
    assert status == 413
    assert headers["content-type"].startswith("text/html")
    assert sent < 200_000_000


def test_a_chunked_delivery_within_the_limit_still_starts_a_run(
    server: AsgiServer, personas: Personas
) -> None:
    made = triggers.trigger_create(workflow=published_workflow(personas.workspace), user=None)
    body = json.dumps({"who": "Ada", "padding": "x" * 900_000}).encode()

    def chunks() -> Iterator[bytes]:  # no Content-Length: httpx sends it chunked
        for start in range(0, len(body), 100_000):
            yield body[start : start + 100_000]

    response = httpx.post(
        server.url + hook_path(made.trigger.url()),
        content=chunks(),
        timeout=30,
        headers={"Content-Type": "application/json", **signed(made.secret, body.decode())},
    )
    assert response.status_code == 202, response.text
    assert Run.objects.get(id=response.json()["run_id"]).inputs["who"] == "Ada"
