"""Shared fixtures: the personas, the fake OpenAI server and a real Celery worker.

The fake OpenAI server is the only test double, and it sits at the network
edge: the worker's production code talks to it through OPENAI_BASE_URL.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings

from accounts.models import Membership, Role, User, Workspace
from accounts.services import user_signup
from accounts.verification import email_verify, verification_token

ROOT = Path(__file__).resolve().parent.parent
IDLE_QUEUE = f"stepwise-test-unconsumed-{uuid.uuid4().hex[:8]}"
PASSWORD = "correct horse battery staple"


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Browser tests last: Playwright leaves an event loop running in the main
    thread for the rest of the session, which other tests must not inherit."""
    items.sort(key=lambda item: "tests/browser/" in str(item.path).replace("\\", "/"))


@pytest.fixture(scope="session", autouse=True)
def fast_password_hashing() -> Iterator[None]:
    """Every test signs people up, four personas at a time: a deliberately slow hash (PBKDF2 at
    over a million rounds) would be most of the suite's time and tests nothing of ours. Worker
    processes never hash a password."""
    from django.test import override_settings

    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
        yield


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Personas:
    """alice owns the workspace; bob edits; vera views; charlie is an outsider."""

    workspace: Workspace
    alice: User
    bob: User
    vera: User
    charlie: User
    other_workspace: Workspace


def signed_up(email: str, name: str = "", password: str = PASSWORD) -> tuple[User, Workspace]:
    """A person who signed up and confirmed their address
    with the link's token, through the services."""
    user, workspace = user_signup(email=email, password=password, name=name)
    return email_verify(token=verification_token(user)), workspace


@pytest.fixture
def personas(db: None) -> Personas:
    alice, workspace = signed_up("alice@example.com", "Alice")
    bob, _ = signed_up("bob@example.com", "Bob")
    vera, _ = signed_up("vera@example.com", "Vera")
    charlie, other = signed_up("charlie@example.com", "Charlie")
    Membership.objects.create(user=bob, workspace=workspace, role=Role.EDITOR)
    Membership.objects.create(user=vera, workspace=workspace, role=Role.VIEWER)
    return Personas(
        workspace=workspace, alice=alice, bob=bob, vera=vera, charlie=charlie, other_workspace=other
    )


def _wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


@pytest.fixture(scope="session")
def fake_openai() -> Iterator[str]:
    """The project's fake OpenAI-compatible server, as a separate process; yields its base URL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "dev.fake_openai", "--port", str(port)],
        cwd=ROOT,
    )
    try:
        _wait_http(f"http://127.0.0.1:{port}/healthz")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture
def fake_calls(fake_openai: str):
    """Read the fake server's per-prompt call counters (reset for each test)."""
    import json

    urllib.request.urlopen(
        urllib.request.Request(f"{fake_openai}/_fake/reset", method="POST"), timeout=5
    )

    def calls(prompt_contains: str = "") -> int:
        query = f"?prompt_contains={urllib.parse.quote(prompt_contains)}" if prompt_contains else ""
        with urllib.request.urlopen(f"{fake_openai}/_fake/calls{query}", timeout=5) as response:
            data = json.load(response)
        return sum(data["by_prompt"].values()) if prompt_contains else data["total"]

    return calls


def _database_url() -> str:
    from django.db import connection

    s = connection.settings_dict
    if s["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{s['NAME']}"
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"postgres://{auth}@{s['HOST'] or 'localhost'}:{s['PORT'] or 5432}/{s['NAME']}"


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


@pytest.fixture(scope="session")
def worker_env(django_db_setup: None, fake_openai: str) -> dict[str, str]:
    from config.celery import app

    queue = f"stepwise-test-{uuid.uuid4().hex[:8]}"
    # What a test enqueues goes to a queue no worker consumes, unless the test
    # asks for the `worker` fixture: a run started by a test that does not
    # expect a worker must not execute while the database is being flushed
    # after it (the TRUNCATE and the worker's queries deadlock).
    app.conf.task_default_queue = IDLE_QUEUE
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": _database_url(),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "STEPWISE_VAR_DIR": str(settings.VAR_DIR),
        "CELERY_QUEUE": queue,
        "OPENAI_API_KEY": "test-key",
        "OPENAI_BASE_URL": f"{fake_openai}/v1",
        "RUN_LEASE_SECONDS": "3",
        # Small, so that fair sharing between workspaces shows in the tests.
        "RUN_MAX_IN_FLIGHT_PER_WORKSPACE": "4",
        "LLM_RETRY_BASE_SECONDS": "0.05",
        "LLM_RETRY_MAX_SECONDS": "2",
        "SECRET_KEY": settings.SECRET_KEY,
    }


@pytest.fixture(scope="session")
def celery_worker(worker_env: dict[str, str]) -> Iterator[WorkerProcess]:
    """One worker for the session; tests that kill it get a fresh one afterwards."""
    worker = WorkerProcess(worker_env, worker_env["CELERY_QUEUE"])
    worker.start()
    yield worker
    worker.stop()


@pytest.fixture
def worker(celery_worker: WorkerProcess, transactional_db: None) -> Iterator[WorkerProcess]:
    from config.celery import app

    if celery_worker.process is None or celery_worker.process.poll() is not None:
        celery_worker.start()
    app.conf.task_default_queue = celery_worker.queue
    try:
        yield celery_worker
    finally:
        app.conf.task_default_queue = IDLE_QUEUE
        _wait_until_no_run_is_running()
    if celery_worker.process is None or celery_worker.process.poll() is not None:
        celery_worker.start()


def _wait_until_no_run_is_running(timeout: float = 10) -> None:
    """Before the flush: the worker's queries and the TRUNCATE would deadlock."""
    from workflows.models import Run

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and Run.objects.filter(status=Run.Status.RUNNING).exists():
        time.sleep(0.05)


def wait_for_run(run_id: int, timeout: float = 60):  # type: ignore[no-untyped-def]
    from workflows.models import Run

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = Run.objects.get(id=run_id)
        if run.is_finished:
            return run
        time.sleep(0.1)
    raise AssertionError(f"Run {run_id} did not finish within {timeout} s (status {run.status})")
