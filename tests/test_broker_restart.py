"""Chaos at a small scale: the broker restarts under load and no run is lost.

A private redis-server (keeping nothing on disk, so a restart empties every
queue, as a crashed Redis does) carries the messages between this process
and a real worker. It is restarted while runs are queued and in flight. The
queued messages vanish with it; the worker may exit (Celery gives up on a
broker that went away) and is restarted as compose's restart policy does;
the reaper (beat's job, called here on a short period) sends again every run
whose message was lost. Every run must succeed, each step called once.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from kombu import pools

from tests.conftest import Personas
from tests.factories import chain
from tests.polling import wait_until
from tests.servers import WorkerProcess, free_port
from workflows import services
from workflows.models import Run
from workflows.runtime import engine

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        shutil.which("redis-server") is None, reason="needs the redis-server binary"
    ),
]


class RedisServer:
    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--loglevel",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while (
            subprocess.run(
                ["redis-cli", "-p", str(self.port), "ping"], capture_output=True, check=False
            ).stdout
            != b"PONG\n"
        ):
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@contextmanager
def publishing_to(url: str, queue: str) -> Iterator[None]:
    """This process's Celery app sends to `url`, on `queue` (its connection pools are rebuilt)."""
    from config.celery import app

    previous = app.conf.broker_url
    previous_queue = app.conf.task_default_queue
    app.conf.task_default_queue = queue
    previous_env = os.environ.get("CELERY_BROKER_URL")

    def switch(to: str, env: str | None) -> None:
        # Celery reads CELERY_BROKER_URL from the environment before its own settings.
        if env is None:
            os.environ.pop("CELERY_BROKER_URL", None)
        else:
            os.environ["CELERY_BROKER_URL"] = env
        app.conf.broker_url = to
        pools.reset()  # kombu's process-wide connection and producer pools, rebuilt on next use
        app._after_fork()  # the app's references to them

    switch(url, url)
    assert app.connection_for_write().as_uri(include_password=True) == url
    try:
        yield
    finally:
        switch(previous, previous_env)
        app.conf.task_default_queue = previous_queue


def test_no_run_is_lost_when_the_broker_restarts_under_load(
    worker_env: dict[str, str], transactional_db: None, personas: Personas, fake_calls, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.RUN_QUEUED_GRACE_SECONDS = 3
    settings.RUN_LEASE_SECONDS = 3
    settings.RUN_MAX_IN_FLIGHT_PER_WORKSPACE = 100
    redis = RedisServer()
    redis.start()
    worker = WorkerProcess(
        {**worker_env, "CELERY_BROKER_URL": redis.url, "RUN_MAX_IN_FLIGHT_PER_WORKSPACE": "100"},
        worker_env["CELERY_QUEUE"],
    )
    try:
        with publishing_to(redis.url, worker_env["CELERY_QUEUE"]):
            worker.start()
            prompts = [
                "Alpha {{ topic }} [[fake:latency=400]]",
                "Beta {{ topic }} [[fake:latency=400]]",
            ]
            workflow = services.workflow_create(
                workspace=personas.workspace, definition=chain("Restart", prompts), user=None
            )
            services.workflow_publish(workflow=workflow, user=None)
            # More runs than the worker's 8 threads: some are in flight, the
            # rest wait in Redis when it goes down.
            run_ids = [
                services.run_start(
                    workflow=workflow, trigger=Run.Trigger.API, inputs={"topic": f"t{i:02}"}
                ).id
                for i in range(30)
            ]
            wait_until(
                lambda: Run.objects.filter(id__in=run_ids, status=Run.Status.RUNNING).exists(),
                message="no run started before the broker went down",
            )
            redis.stop()
            redis.start()
            restarted_at = time.monotonic()
            restarts = 0
            while Run.objects.filter(id__in=run_ids).exclude(status__in=Run.FINISHED).exists():
                assert time.monotonic() - restarted_at < 90, "runs were not recovered within 90 s"
                if worker.process is None or worker.process.poll() is not None:
                    worker.start()  # the supervisor's job (compose: restart: unless-stopped)
                    restarts += 1
                engine.reap()
                time.sleep(0.5)
        runs = list(Run.objects.filter(id__in=run_ids).prefetch_related("steps"))
        assert [r.status for r in runs] == [Run.Status.SUCCEEDED] * 30, {
            r.status + ": " + r.error for r in runs
        }
        # Every call the model received is an attempt the run recorded: a
        # step that had finished was never called again. (A call cut off by a
        # worker exit is an attempt too, and is made again.)
        for run in runs:
            topic = run.inputs["topic"]
            attempts = {step.key: step.attempts for step in run.steps.all()}
            assert (fake_calls(f"Alpha {topic}"), fake_calls(f"Beta {topic}")) == (
                attempts["s1"],
                attempts["s2"],
            )
        print(f"worker restarts: {restarts}")
    finally:
        worker.stop()
        redis.stop()
