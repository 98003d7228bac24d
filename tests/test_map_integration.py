"""The `map` step with a real worker process: its items run on the worker's
threads at the concurrency asked, and a worker killed with kill -9 while
items are in flight leaves a map that resumes without calling a finished
item again."""

from __future__ import annotations

import time

import pytest

from tests.conftest import Personas
from tests.factories import published_workflow
from tests.servers import WorkerProcess
from workflows import services
from workflows.models import Run, StepItem, StepRun
from workflows.runtime import engine


def mapping(prompt: str, concurrency: int) -> dict:
    return {
        "name": "Map on a worker",
        "inputs": [{"name": "things", "type": "json"}],
        "steps": [
            {
                "key": "each",
                "type": "map",
                "over": "{{ things }}",
                "concurrency": concurrency,
                "prompt": prompt,
                "max_tokens": 16,
            }
        ],
    }


def finished_run(run_id: int, timeout: float, *, reap: bool = False) -> Run:
    deadline = time.monotonic() + timeout
    while True:
        run = Run.objects.get(id=run_id)
        if run.is_finished:
            return run
        assert time.monotonic() < deadline, f"run {run_id} did not finish within {timeout} s"
        if reap:
            engine.reap()  # the beat's job, on a short period so that the test stays quick
        time.sleep(0.1)


@pytest.mark.integration
def test_200_items_ten_at_once_at_one_second_each_take_about_twenty_seconds(
    worker: WorkerProcess, personas: Personas, fake_calls
) -> None:  # type: ignore[no-untyped-def]
    workflow = published_workflow(
        personas.workspace, mapping("Item {{ index }}. [[fake:latency=1000]]", concurrency=10)
    )
    begun = time.monotonic()
    run = services.run_start(
        workflow=workflow, trigger=Run.Trigger.MANUAL, inputs={"things": list(range(200))}
    )
    run = finished_run(run.id, timeout=90)
    elapsed = time.monotonic() - begun
    assert run.status == Run.Status.SUCCEEDED, run.error
    assert len(run.output) == 200
    assert fake_calls("[[fake:latency=1000]]") == 200
    ideal = 200 / 10 * 1.0
    # The bound, 1.2 x the ideal, plus 2 s for the worker to pick the run up.
    print(f"map: 200 items, concurrency 10, 1 s each: {elapsed:.1f} s (ideal {ideal:.0f} s)")
    assert elapsed <= 1.2 * ideal + 2.0, f"{elapsed:.1f} s"
    # Never more than ten in flight: no eleventh call started before the first ten ended.
    items = list(StepItem.objects.filter(run=run).order_by("started_at"))
    first_end = min(item.finished_at for item in items[:10])
    assert items[10].started_at >= first_end


@pytest.mark.integration
def test_a_map_resumes_after_the_worker_is_killed_and_calls_no_finished_item_again(
    worker: WorkerProcess, personas: Personas, fake_calls, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.RUN_LEASE_SECONDS = 3
    workflow = published_workflow(
        personas.workspace, mapping("Item {{ index }}. [[fake:latency=700]]", concurrency=5)
    )
    run = services.run_start(
        workflow=workflow, trigger=Run.Trigger.MANUAL, inputs={"things": list(range(30))}
    )
    deadline = time.monotonic() + 30
    while StepItem.objects.filter(run=run, status=StepItem.Status.SUCCEEDED).count() < 10:
        assert time.monotonic() < deadline, "the map's items never got going"
        time.sleep(0.05)
    worker.kill()
    finished_before = set(
        StepItem.objects.filter(run=run, status=StepItem.Status.SUCCEEDED).values_list(
            "index", flat=True
        )
    )
    in_flight = set(
        StepItem.objects.filter(run=run, status=StepItem.Status.RUNNING).values_list(
            "index", flat=True
        )
    )
    assert len(in_flight) <= 5
    worker.start()
    run = finished_run(run.id, timeout=90, reap=True)
    assert run.status == Run.Status.SUCCEEDED, run.error
    items = list(StepItem.objects.filter(run=run).order_by("index"))
    assert all(item.status == StepItem.Status.SUCCEEDED for item in items)
    assert run.output == [item.output for item in items]
    for item in items:
        calls = fake_calls(f"Item {item.index}.")
        if item.index in finished_before:
            assert calls == 1 and item.attempts == 1, item.index
        elif item.index in in_flight:
            # Sent before the kill, never answered to a living worker: sent once more.
            assert calls <= 2 and item.attempts <= 2, item.index
        else:
            assert calls == 1 and item.attempts == 1, item.index
    # Every item paid is counted once, on the step and in the run.
    step = StepRun.objects.get(run=run, key="each")
    assert step.cost_nanousd == sum(item.cost_nanousd for item in items)
    assert run.cost_nanousd == step.cost_nanousd


@pytest.mark.integration
def test_a_canceled_map_records_its_items_in_flight_and_starts_no_more(
    worker: WorkerProcess, personas: Personas, fake_calls
) -> None:  # type: ignore[no-untyped-def]
    workflow = published_workflow(
        personas.workspace, mapping("Item {{ index }}. [[fake:latency=700]]", concurrency=2)
    )
    run = services.run_start(
        workflow=workflow, trigger=Run.Trigger.MANUAL, inputs={"things": list(range(20))}
    )
    deadline = time.monotonic() + 30
    while StepItem.objects.filter(run=run, status=StepItem.Status.SUCCEEDED).count() < 2:
        assert time.monotonic() < deadline, "the map's items never got going"
        time.sleep(0.05)
    assert services.run_cancel(run=Run.objects.get(id=run.id))
    deadline = time.monotonic() + 30
    while StepRun.objects.filter(run=run, key="each", status=StepRun.Status.RUNNING).exists():
        assert time.monotonic() < deadline, "the map step was left running"
        time.sleep(0.1)
    run.refresh_from_db()
    assert run.status == Run.Status.CANCELED
    step = StepRun.objects.get(run=run, key="each")
    assert step.status == StepRun.Status.FAILED and step.error == "Canceled."
    items = list(StepItem.objects.filter(run=run).order_by("index"))
    done = [item for item in items if item.status == StepItem.Status.SUCCEEDED]
    assert not any(item.status == StepItem.Status.RUNNING for item in items)
    assert 2 <= len(done) < 20
    # Every call sent was answered and recorded: paid once, counted once.
    assert fake_calls("[[fake:latency=700]]") == len(done)
    assert step.cost_nanousd == sum(item.cost_nanousd for item in items) == run.cost_nanousd
