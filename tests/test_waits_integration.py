"""Durable waits with real parts: a Celery worker process killed with -9, and
a private Redis restarted empty, while runs wait. Parked runs hold nothing,
so nothing is lost; every step's call is made once."""

from __future__ import annotations

import shutil
import time

import pytest

from tests.conftest import Personas
from tests.factories import published_workflow, steps_of
from tests.polling import wait_until
from tests.servers import WorkerProcess
from tests.test_broker_restart import RedisServer, publishing_to
from workflows import services
from workflows.models import Run, StepRun
from workflows.runtime import engine

pytestmark = pytest.mark.integration


def _llm(key: str, prompt: str) -> dict:
    return {"key": key, "type": "llm", "prompt": prompt, "max_tokens": 20}


def test_a_parent_and_its_child_finish_once_after_the_worker_is_killed_mid_child(
    worker: WorkerProcess, personas: Personas, fake_calls, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.RUN_LEASE_SECONDS = 3
    child_workflow = published_workflow(
        personas.workspace,
        {
            "name": "Child",
            "inputs": [{"name": "text", "type": "text"}],
            "steps": [
                _llm(
                    f"c{i}",
                    f"Child step {i} on {{{{ text }}}} [[fake:latency=700]] [[fake:reply=ok {i}]]",
                )
                for i in range(1, 4)
            ],
        },
    )
    parent_workflow = published_workflow(
        personas.workspace,
        {
            "name": "Parent",
            "inputs": [{"name": "topic", "type": "text"}],
            "steps": [
                _llm("pre", "Before the child on {{ topic }}"),
                {
                    "key": "call",
                    "type": "workflow",
                    "workflow": child_workflow.id,
                    "inputs": {"text": "{{ topic }}"},
                },
                _llm("post", "After the child: {{ call }}"),
            ],
        },
    )
    run = services.run_start(
        workflow=parent_workflow, trigger=Run.Trigger.MANUAL, inputs={"topic": "kills"}
    )
    wait_until(
        lambda: StepRun.objects.filter(
            run__parent=run, key="c2", status=StepRun.Status.RUNNING
        ).exists(),
        message="the child's second step never started",
    )
    worker.kill()
    killed_at = time.monotonic()
    worker.start()
    while not Run.objects.get(id=run.id).is_finished:
        engine.reap()  # beat's job, on a short period
        assert time.monotonic() - killed_at < 60, "not recovered within 60 s"
        time.sleep(0.2)
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED, run.error
    children = list(Run.objects.filter(parent=run))
    assert len(children) == 1 and children[0].status == Run.Status.SUCCEEDED
    child = children[0]
    # The calls finished before the kill were made once. After it, every call
    # the model received is an attempt a run recorded (the one cut by the kill
    # is made again, if the kill came before it left; on a loaded machine a
    # worker whose 3 s lease lapsed may be replaced mid-call, and both calls
    # are counted, never hidden).
    assert fake_calls("Before the child on kills") == 1
    assert fake_calls("Child step 1 on kills") == 1
    child_steps, parent_steps = steps_of(child), steps_of(run)
    assert 1 <= fake_calls("Child step 2 on kills") <= child_steps["c2"].attempts
    assert fake_calls("Child step 3 on kills") == child_steps["c3"].attempts
    assert fake_calls("After the child") == parent_steps["post"].attempts
    print(
        "attempts:", {k: s.attempts for k, s in child_steps.items()}, parent_steps["post"].attempts
    )
    assert run.cost_nanousd == sum(s.cost_nanousd for s in run.steps.all()) + child.cost_nanousd


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs the redis-server binary")
def test_a_waiting_run_survives_a_restart_of_worker_beat_and_broker(
    worker_env: dict[str, str], transactional_db: None, personas: Personas, fake_calls, settings
) -> None:  # type: ignore[no-untyped-def]
    redis = RedisServer()
    redis.start()
    worker = WorkerProcess(
        {**worker_env, "CELERY_BROKER_URL": redis.url}, worker_env["CELERY_QUEUE"]
    )
    try:
        with publishing_to(redis.url, worker_env["CELERY_QUEUE"]):
            worker.start()
            slow = published_workflow(
                personas.workspace,
                {
                    "name": "Sleeper",
                    "inputs": [{"name": "text", "type": "text"}],
                    "steps": [
                        {"key": "pause", "type": "wait", "seconds": 3},
                        _llm("say", "Woke up about {{ text }}"),
                    ],
                },
            )
            caller = published_workflow(
                personas.workspace,
                {
                    "name": "Caller of a sleeper",
                    "inputs": [{"name": "text", "type": "text"}],
                    "steps": [
                        {
                            "key": "call",
                            "type": "workflow",
                            "workflow": slow.id,
                            "inputs": {"text": "{{ text }}"},
                        }
                    ],
                },
            )
            direct = services.run_start(
                workflow=slow, trigger=Run.Trigger.API, inputs={"text": "direct"}
            )
            nested = services.run_start(
                workflow=caller, trigger=Run.Trigger.API, inputs={"text": "nested"}
            )
            wait_until(
                lambda: Run.objects.filter(status=Run.Status.WAITING).count() == 3,
                message="the runs never parked",
            )
            # Everything stops: the worker, the broker (its queues emptied), and beat.
            worker.stop()
            redis.stop()
            assert set(
                Run.objects.filter(status=Run.Status.WAITING).values_list("lease_owner", flat=True)
            ) == {""}
            redis.start()
            worker.start()
            started = time.monotonic()
            while not all(
                Run.objects.get(id=run_id).is_finished for run_id in (direct.id, nested.id)
            ):
                assert time.monotonic() - started < 60, "the waiting runs never finished"
                engine.reap()  # beat, started again
                time.sleep(0.3)
        for run_id in (direct.id, nested.id):
            run = Run.objects.get(id=run_id)
            assert run.status == Run.Status.SUCCEEDED, run.error
        assert fake_calls("Woke up about direct") == 1
        assert fake_calls("Woke up about nested") == 1
        assert Run.objects.get(id=nested.id).waited_ms >= 2500
    finally:
        worker.stop()
        redis.stop()
