"""Processes and servers the tests start: a Celery worker, the ASGI app, a callback receiver."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.polling import wait_http, wait_until

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class WorkerProcess:
    """A real `celery worker` process on the test database and a private queue."""

    def __init__(self, env: dict[str, str], queue: str) -> None:
        self.env = env
        self.queue = queue
        self.process: subprocess.Popen[str] | None = None
        self.log: list[str] = []

    def start(self, timeout: float = 60) -> None:
        ready = threading.Event()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "--pool",
                "threads",
                "--concurrency",
                "8",
                "-Q",
                self.queue,
                "--without-gossip",
                "--without-mingle",
                "--loglevel",
                "INFO",
                "-n",
                f"test-{uuid.uuid4().hex[:6]}@%h",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )

        def pump(stream) -> None:  # type: ignore[no-untyped-def]
            for line in stream:
                self.log.append(line)
                if " ready." in line:
                    ready.set()

        threading.Thread(target=pump, args=(self.process.stdout,), daemon=True).start()
        if not ready.wait(timeout):
            self.stop()
            raise RuntimeError("The Celery worker did not start:\n" + "".join(self.log[-40:]))

    def wait_for_log(self, text: str, since: int = 0, timeout: float = 30) -> None:
        """Until a line logged after the first `since` lines contains `text`."""
        wait_until(
            lambda: any(text in line for line in self.log[since:]),
            timeout,
            f"the worker did not log {text!r} within {timeout} s",
        )

    def kill(self) -> None:
        """kill -9: no warm shutdown, no message acknowledged, no lease released."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)


class AsgiServer:
    """`uvicorn config.asgi:application` in its own process, on the test database."""

    def __init__(self, env: dict[str, str], log_level: str = "warning") -> None:
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
            wait_http(f"{self.url}/healthz")
        except Exception:
            self.stop()
            raise

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)


def worker_and_server(worker: WorkerProcess, env: dict[str, str]) -> AsgiServer:
    """Start `worker` and an ASGI server on `env` side by side (each takes seconds to boot)."""
    with ThreadPoolExecutor(1) as pool:
        booting = pool.submit(worker.start)
        try:
            server = AsgiServer(env)
        except BaseException:
            with contextlib.suppress(Exception):
                booting.result()
            worker.stop()
            raise
        try:
            booting.result()
        except BaseException:
            server.stop()
            raise
    return server


def stop_together(*processes: WorkerProcess | AsgiServer) -> None:
    """Stop them side by side (each waits for its graceful shutdown)."""
    with ThreadPoolExecutor(len(processes)) as pool:
        for stopping in [pool.submit(process.stop) for process in processes]:
            stopping.result()


class CallbackReceiver:
    """A local HTTP server that records the callbacks it gets and answers with scripted codes."""

    def __init__(self, codes: list[int] | None = None) -> None:
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
