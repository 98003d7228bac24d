"""Shared fixtures: the personas, the fake OpenAI server and a real Celery worker.

The fake OpenAI server is the only test double, and it sits at the network
edge: the worker's production code talks to it through OPENAI_BASE_URL.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from django.conf import settings

from accounts.models import Membership, Role, User, Workspace
from tests.factories import signed_up, webhook_trigger
from tests.polling import wait_http
from tests.servers import ROOT, WorkerProcess, free_port
from workflows.integrations.triggers import TriggerWithSecret

IDLE_QUEUE = f"stepwise-test-unconsumed-{uuid.uuid4().hex[:8]}"


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Browser tests last: Playwright leaves an event loop running in the main
    thread for the rest of the session, which other tests must not inherit.
    Before them, whole modules of integration tests (a real worker, servers)
    before the quick ones, so pytest-xdist's processes finish together
    instead of one running a long test alone at the end. The order inside a
    module is kept."""
    slow = {item.path for item in items if item.get_closest_marker("integration")}

    def rank(item: pytest.Item) -> int:
        if "tests/browser/" in str(item.path).replace("\\", "/"):
            return 2
        return 0 if item.path in slow else 1

    items.sort(key=rank)


@pytest.fixture(scope="session", autouse=True)
def fast_password_hashing() -> Iterator[None]:
    """Every test signs people up, four personas at a time: a deliberately slow hash (PBKDF2 at
    over a million rounds) would be most of the suite's time and tests nothing of ours. Worker
    processes never hash a password."""
    from django.test import override_settings

    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
        yield


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup: None, django_db_blocker) -> None:  # type: ignore[no-untyped-def]
    """On PostgreSQL, the test database does not wait for each commit to reach the disk
    (synchronous_commit off: for this database only, for every connection to it, the
    worker's and the servers' too). Transactions, locks and isolation are unchanged; only
    what a crash of PostgreSQL itself would keep, which no test is about."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        name = connection.ops.quote_name(connection.settings_dict["NAME"])
        cursor.execute(f"ALTER DATABASE {name} SET synchronous_commit = off")
        cursor.execute("SET synchronous_commit = off")


@dataclass
class Personas:
    """alice owns the workspace; bob edits; vera views; charlie is an outsider."""

    workspace: Workspace
    alice: User
    bob: User
    vera: User
    charlie: User
    other_workspace: Workspace


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


@pytest.fixture
def hook(personas: Personas) -> TriggerWithSecret:
    """A webhook trigger of alice's published GREETING workflow."""
    return webhook_trigger(personas.workspace, personas.alice)


@pytest.fixture(scope="session")
def fake_openai() -> Iterator[str]:
    """The project's fake OpenAI-compatible server, as a separate process; yields its base URL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "dev.fake_openai", "--port", str(port)],
        cwd=ROOT,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
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


@pytest.fixture(scope="session")
def _heartbeat_connection_closed(  # type: ignore[no-untyped-def]
    django_db_setup: None, django_db_blocker
) -> Iterator[None]:
    """The engine's lease heartbeat is a thread of the process that runs the engine; in
    the test process it keeps its own database connection open, which would keep
    PostgreSQL from dropping the test database at the end: closed here, before that."""
    yield
    from django.db import connection

    if connection.vendor == "postgresql":
        with django_db_blocker.unblock(), connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )


@pytest.fixture
def engine_in_process(  # type: ignore[no-untyped-def]
    _heartbeat_connection_closed: None, transactional_db: None, fake_openai: str, settings
) -> Iterator[None]:
    """The engine in this process: a run executes, to its end, inside the call
    that enqueues it (Celery's eager mode calls the same task function a worker
    would), against the fake OpenAI server with the worker's settings.

    For tests where no crash, duplicate delivery, broker or concurrency is
    involved: no worker process, no broker round trip, no polling. The data is
    committed (transactional_db), since the engine's work starts on commit."""
    from config.celery import app

    settings.OPENAI_API_KEY = "test-key"
    settings.OPENAI_BASE_URL = f"{fake_openai}/v1"
    settings.RUN_MAX_IN_FLIGHT_PER_WORKSPACE = 4
    settings.LLM_RETRY_BASE_SECONDS = 0.05
    settings.LLM_RETRY_MAX_SECONDS = 2
    app.conf.task_always_eager = True
    try:
        yield
    finally:
        app.conf.task_always_eager = False


def _wait_until_no_run_is_running(timeout: float = 10) -> None:
    """Before the flush: the worker's queries and the TRUNCATE would deadlock."""
    from workflows.models import Run

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and Run.objects.filter(status=Run.Status.RUNNING).exists():
        time.sleep(0.05)
