"""Helpers shared by the webhook, API, schedule and callback tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from standardwebhooks import Webhook

from accounts.models import Workspace
from workflows import services
from workflows.models import Workflow

GREETING = {
    "name": "Greeting",
    "description": "Greets someone, without calling a model",
    "inputs": [
        {"name": "who", "type": "text"},
        {"name": "times", "type": "number", "required": False, "default": 1},
    ],
    "steps": [
        {
            "key": "greet",
            "type": "template",
            "template": "Hello {{ who }} x{{ times }} from {{ payload.source }}",
        },
    ],
}


def published_workflow(workspace: Workspace, definition: dict | None = None) -> Workflow:
    workflow = services.workflow_create(
        workspace=workspace, definition=definition or GREETING, user=None
    )
    services.workflow_publish(workflow=workflow, user=None)
    return workflow


def signed(
    secret: str, body: str, *, msg_id: str | None = None, at: datetime | None = None
) -> dict[str, str]:
    """Standard Webhooks headers made by the reference library."""
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    at = at or datetime.now(tz=UTC)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, at, body),
    }


def hook_path(url: str) -> str:
    return url[url.index("/hooks/") :]


class AsgiServer:
    """`uvicorn config.asgi:application` in its own process, on the test database."""

    def __init__(self, env: dict[str, str], log_level: str = "warning") -> None:
        import subprocess
        import sys

        from tests.conftest import ROOT, _wait_http, free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "config.asgi:application",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                log_level,
            ],
            cwd=ROOT,
            env={**env, "SITE_URL": self.url},
            start_new_session=True,
        )
        try:
            _wait_http(f"{self.url}/healthz")
        except Exception:
            self.stop()
            raise

    def stop(self) -> None:
        import os
        import signal
        import subprocess

        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)


class CallbackReceiver:
    """A local HTTP server that records the callbacks
    it receives and answers with scripted codes."""

    def __init__(self, codes: list[int] | None = None) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.received: list[tuple[dict[str, str], bytes]] = []
        self.codes = list(codes or [])
        self.arrived = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                code = receiver.codes.pop(0) if receiver.codes else 200
                if code < 300:
                    receiver.arrived.set()
                self.send_response(code)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/stepwise-callback"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
