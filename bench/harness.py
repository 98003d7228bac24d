"""What every benchmark shares: a real stack on this machine, and statistics.

`Stack` creates a fresh PostgreSQL database, migrates it, starts the fake
OpenAI server and real Celery worker processes on Redis, and configures this
process's Django to use the same database and a private queue. Benchmarks
then start runs through the same services the product uses.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
REDIS = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/12")


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50": round(percentile(values, 50), 3),
        "p90": round(percentile(values, 90), 3),
        "p99": round(percentile(values, 99), 3),
        "max": round(max(values), 3) if values else float("nan"),
    }


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


def web_start(env: dict[str, str], workers: int) -> tuple[subprocess.Popen[bytes], int]:
    """The ASGI app under uvicorn on a free port (plain http on 127.0.0.1), once it answers."""
    port = free_port()
    web = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "config.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        cwd=ROOT,
        env={**env, "ALLOWED_HOSTS": "127.0.0.1", "SECURE_COOKIES": "false"},
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
    except BaseException:
        web.terminate()
        web.wait()
        raise
    return web, port


class Worker:
    def __init__(
        self, env: dict[str, str], queue: str, concurrency: int, name: str, nice: int = 0
    ) -> None:
        self.env, self.queue, self.concurrency, self.name, self.nice = (
            env,
            queue,
            concurrency,
            name,
            nice,
        )
        self.process: subprocess.Popen[str] | None = None
        self.supervised = False
        self.restarts = 0
        self.killed = 0

    def supervise(self) -> None:
        """Restart the worker when it exits on its own, as compose's restart policy does."""
        self.supervised = True

        def watch() -> None:
            while self.supervised:
                time.sleep(0.5)
                if self.supervised and self.process and self.process.poll() is not None:
                    self.restarts += 1
                    try:
                        self.start()
                    except Exception as e:  # e.g. the broker is still down: try again
                        sys.stderr.write(f"[{self.name}] restart failed: {e}\n")

        threading.Thread(target=watch, daemon=True).start()

    def start(self) -> None:
        ready = threading.Event()
        self.process = subprocess.Popen(
            [
                "nice",
                "-n",
                str(self.nice),
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "--pool",
                "threads",
                "--concurrency",
                str(self.concurrency),
                "-Q",
                self.queue,
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "--loglevel",
                "WARNING",
                "-n",
                f"{self.name}@%h",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )

        log = open(f"/tmp/{self.name}.log", "a")  # noqa: SIM115 (the pump thread owns it)

        def pump() -> None:
            assert self.process and self.process.stdout
            for line in self.process.stdout:
                log.write(line)
                log.flush()
                if " ready." in line:
                    ready.set()

        threading.Thread(target=pump, daemon=True).start()
        # --loglevel WARNING hides "ready"; wait for the worker to answer a ping instead.
        deadline = time.monotonic() + 60
        from config.celery import app

        while time.monotonic() < deadline and not ready.is_set():
            try:
                replies = app.control.ping(
                    destination=[f"{self.name}@{os.uname().nodename}"], timeout=0.5
                )
            except Exception:
                replies = []
                time.sleep(0.5)
            if replies:
                return
        if not ready.is_set():
            raise RuntimeError(f"worker {self.name} did not start")

    def kill(self) -> None:
        """kill -9; a supervised worker is then restarted by its supervisor."""
        assert self.process
        self.killed += 1
        # It may have just exited; the supervisor restarts it.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        self.supervised = False
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)

    def rss_kib(self) -> int:
        """Resident memory of the worker process (threads pool: one process)."""
        assert self.process
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0


class Stack:
    def __init__(
        self,
        *,
        workers: int = 1,
        concurrency: int = 64,
        latency_ms: int = 0,
        pool_size: int | None = 20,
        worker_nice: int = 0,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.worker_nice = worker_nice
        self.db = f"stepwise_bench_{uuid.uuid4().hex[:6]}"
        self.queue = f"bench-{uuid.uuid4().hex[:6]}"
        self.fake_port = free_port()
        self.latency_ms = latency_ms
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "SECRET_KEY": "bench-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz",
            "DATABASE_URL": f"{PG}/{self.db}",
            "CELERY_BROKER_URL": REDIS,
            "CELERY_QUEUE": self.queue,
            "OPENAI_API_KEY": "bench",
            "OPENAI_BASE_URL": f"http://127.0.0.1:{self.fake_port}/v1",
            "LOG_LEVEL": "WARNING",
            **(extra_env or {}),
        }
        if pool_size is not None:  # None: the settings' default
            self.env["DB_POOL_MAX_SIZE"] = str(pool_size)
        self.worker_count, self.concurrency = workers, concurrency
        self.workers: list[Worker] = []
        self.fake: subprocess.Popen[bytes] | None = None
        self.beat: subprocess.Popen[bytes] | None = None

    def start_beat(self) -> None:
        """The real beat process: it drives the reaper, as in production."""
        self.beat = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "beat",
                "--loglevel",
                "WARNING",
                "--schedule",
                f"/tmp/{self.queue}-beat",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    @property
    def fake_url(self) -> str:
        return f"http://127.0.0.1:{self.fake_port}"

    def __enter__(self) -> Stack:
        subprocess.run(["psql", PG + "/postgres", "-qc", f"CREATE DATABASE {self.db}"], check=True)
        os.environ.update({k: v for k, v in self.env.items() if k != "DB_POOL_MAX_SIZE"})
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        self.fake = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dev.fake_openai",
                "--port",
                str(self.fake_port),
                "--latency-ms",
                str(self.latency_ms),
            ],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_http(f"{self.fake_url}/healthz")
        for i in range(self.worker_count):
            worker = Worker(
                self.env, self.queue, self.concurrency, f"bench{i}-{self.queue}", self.worker_nice
            )
            worker.start()
            self.workers.append(worker)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.beat:
            self.beat.terminate()
            self.beat.wait()
        for worker in self.workers:
            worker.stop()
        if self.fake:
            self.fake.terminate()
            self.fake.wait()
        from django.db import connections

        connections.close_all()
        subprocess.run(
            ["psql", PG + "/postgres", "-qc", f"DROP DATABASE IF EXISTS {self.db} WITH (FORCE)"]
        )

    def fake_calls(self) -> dict:
        with urllib.request.urlopen(f"{self.fake_url}/_fake/calls", timeout=5) as response:
            return json.load(response)

    def fake_reset(self) -> None:
        urllib.request.urlopen(
            urllib.request.Request(f"{self.fake_url}/_fake/reset", method="POST"), timeout=5
        )


def workspace_and_workflow(definition: dict, *, name: str = "bench"):  # type: ignore[no-untyped-def]
    from accounts.services import user_signup
    from workflows import services

    user, workspace = user_signup(
        email=f"{name}-{uuid.uuid4().hex[:6]}@bench.local", password="x" * 20
    )
    workflow = services.workflow_create(workspace=workspace, definition=definition, user=user)
    version = services.workflow_publish(workflow=workflow, user=user)
    return workspace, workflow, version


def chain(steps: int, *, prompt: str = "Step {i} of {{{{ topic }}}}", max_tokens: int = 16) -> dict:
    return {
        "name": f"Chain of {steps}",
        "inputs": [{"name": "topic", "type": "text"}],
        "steps": [
            {"key": f"s{i}", "type": "llm", "prompt": prompt.format(i=i), "max_tokens": max_tokens}
            for i in range(1, steps + 1)
        ],
    }


def wait_all(run_ids: list[int], timeout: float) -> None:
    from workflows.models import Run

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not Run.objects.filter(id__in=run_ids).exclude(status__in=Run.FINISHED).exists():
            return
        time.sleep(0.2)
    raise RuntimeError("runs did not finish in time")


def write_result(name: str, result: dict) -> None:
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(result, indent=2, default=str))
    print(json.dumps(result, indent=2, default=str))
